"""The study registry behind ``transferlab study NAME``.

A study registers one ``Study``: its name, a one-line summary, a config dataclass whose
fields carry ``metadata={"help": ...}`` (the CLI makes one ``--flag`` per field from it) and
a ``run(config, progress)`` function returning the study's result dict. Built-in studies
register when their package is imported; ``get_study`` and ``all_studies`` import them.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from transferlab.errors import UserError, bad_value

# Packages that register a study on import (a new study adds its folder here).
BUILTIN = (
    "transferlab.studies.yosinski",
    "transferlab.studies.ensembles",
    "transferlab.studies.fewshot",
    "transferlab.studies.defrost",
    "transferlab.studies.guide",
    "transferlab.studies.text",
)


@dataclass(frozen=True)
class Study:
    """One registered study.

    ``run(config, progress=bool) -> dict`` runs (or resumes) the study and returns its
    result (written to its output folder too); ``summarize(result) -> (lines, json_dict)``
    gives the CLI's human summary and its ``--json`` output.
    """

    name: str
    summary: str             # one line, for `transferlab study --help`
    description: str         # a paragraph, for `transferlab study NAME --help`
    config: type             # a dataclass; every field has metadata["help"]
    run: Callable[..., dict]
    summarize: Callable[[dict], tuple[list[str], dict]]

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.config):
            raise UserError(f"study {self.name!r}: config must be a dataclass, got "
                            f"{self.config!r}")
        missing = [f.name for f in dataclasses.fields(self.config) if "help" not in f.metadata]
        if missing:
            raise UserError(f"study {self.name!r}: config fields {missing} have no "
                            "metadata['help']; every flag needs its help text")


_STUDIES: dict[str, Study] = {}


def register_study(study: Study) -> Study:
    """Add ``study`` (a second registration under the same name replaces the first)."""
    _STUDIES[study.name] = study
    return study


def all_studies() -> dict[str, Study]:
    """Every registered study by name (built-ins imported first), in registration order."""
    for module in BUILTIN:
        importlib.import_module(module)
    return dict(_STUDIES)


def get_study(name: str) -> Study:
    """The study ``name``; ``UserError`` naming the registered ones if there is none."""
    studies = all_studies()
    if name not in studies:
        raise bad_value("study", name, ", ".join(studies) or "(none registered)",
                        "run `transferlab study --help` for the list")
    return studies[name]
