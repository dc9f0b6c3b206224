"""The sweep spec: what a YAML file (or dict) may say, checked before anything runs.

Structure is checked by pydantic models (unknown fields are errors); meaning (does the
protocol exist, is the depth inside the model, is the checkpoint there) by ``grid.plan``.
Both report every problem at once, each with its path in the file, in one ``UserError``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from transferlab.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PretrainSpec(_Strict):
    """A source trained by the sweep itself (then cached next to the database)."""

    task: str = Field(description="source task string, e.g. 'digits:classes=0-4:size=16'")
    arch: str = Field("convnet", description="built-in architecture name")
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields")
    seed: int = 0


class SourceSpec(_Strict):
    """One named source: an existing checkpoint, or a pretraining recipe."""

    checkpoint: str | None = Field(None, description="path to a .safetensors checkpoint "
                                   "(relative paths are relative to the spec file)")
    pretrain: PretrainSpec | None = None
    per_seed: bool = Field(False, description="pretrain once per trial seed (seed = "
                           "pretrain.seed + trial seed) instead of once")
    epochs: int | None = Field(None, ge=0, description="shorthand for pretrain.train.epochs; "
                               "0 gives a randomly initialised ('random features') source")

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.checkpoint is None) == (self.pretrain is None):
            raise ValueError("give exactly one of 'checkpoint' or 'pretrain'")
        if self.checkpoint is not None and (self.per_seed or self.epochs is not None):
            raise ValueError("'per_seed' and 'epochs' only apply to a 'pretrain' source")
        return self

    def pretrain_train(self) -> dict[str, Any]:
        """The pretraining TrainConfig overrides, with the ``epochs`` shorthand applied."""
        assert self.pretrain is not None  # internal: only called for pretrain sources
        train = dict(self.pretrain.train)
        if self.epochs is not None:
            train["epochs"] = self.epochs
        return train


class SweepSpec(_Strict):
    """A grid of transfer trials: sources x target x axes, under one training budget."""

    name: str = Field(min_length=1, description="sweep name, stored with every trial")
    target: str = Field(description="target task string, e.g. 'digits:classes=5-9:size=16'")
    sources: dict[str, SourceSpec] = Field(default_factory=dict)
    axes: dict[str, Any] = Field(default_factory=dict, description="axis name -> list of "
                                 "values (or one value); 'depth: all'; 'seed: N' = 0..N-1")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig fields "
                                  "(the budget) shared by every trial")
    data_dir: str | None = Field(None, description="dataset folder (default: "
                                 "TRANSFERLAB_DATA or the built-in location)")
    keep: list[Literal["weights", "probs"]] = Field(
        default_factory=list, description="trial outputs to keep beside the database: "
        "'weights' (safetensors checkpoint), 'probs' (test-set softmax + labels); see "
        "load_trial_model / load_trial_probs")
    base_dir: str | None = Field(None, exclude=True, description="folder that relative "
                                 "checkpoint paths are relative to (the spec file's folder)")


def loc_path(loc: tuple) -> str:
    """Pydantic's ``('axes', 'depth', 2)`` -> ``'axes.depth[2]'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def pydantic_problems(exc: ValidationError, prefix: tuple = ()) -> list[str]:
    """One ``path: message`` line per pydantic error."""
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(p for p in err["loc"] if p not in ("function-after",))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling (see docs/sweeps.md for the fields)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"{loc_path(loc)}: {msg}")
    return lines


def raise_problems(name: str, problems: list[str]) -> None:
    """Raise one ``UserError`` listing every problem (no-op when there are none)."""
    if not problems:
        return
    unique = list(dict.fromkeys(problems))
    s = "s" if len(unique) > 1 else ""
    raise UserError(f"sweep spec {name} has {len(unique)} problem{s} (nothing was run):\n  "
                    + "\n  ".join(unique))


def read_spec(spec: SweepSpec | dict | str | os.PathLike) -> tuple[dict, str, str | None]:
    """(raw dict, display name, base folder) from a spec object, a dict or a YAML path."""
    if isinstance(spec, SweepSpec):
        raw = spec.model_dump()
        return raw, repr(spec.name), spec.base_dir
    if isinstance(spec, dict):
        return dict(spec), repr(spec.get("name", "<dict>")), spec.get("base_dir")
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"spec={str(path)!r} does not exist: allowed is a YAML sweep spec "
                        "file; check the path (examples/depth_sweep.yaml shows the format)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"spec={str(path)!r} is not valid YAML: {exc}; fix the syntax") from exc
    if not isinstance(raw, dict):
        raise UserError(f"spec={str(path)!r} holds a {type(raw).__name__}: allowed is a YAML "
                        "mapping with name, target, sources, axes and train")
    raw.setdefault("base_dir", str(path.resolve().parent))
    return raw, repr(str(path)), raw["base_dir"]


def parse_structure(raw: dict) -> tuple[SweepSpec | None, list[str], set[str]]:
    """Pydantic check of the whole spec: (spec or None, problems, top-level keys that failed)."""
    try:
        return SweepSpec.model_validate(raw), [], set()
    except ValidationError as exc:
        failed = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        return None, pydantic_problems(exc), failed


def parse_sources(raw_sources) -> tuple[dict[str, SourceSpec], list[str]]:
    """Validate each source on its own, so one bad source does not hide the others' checks."""
    if not isinstance(raw_sources, dict):
        return {}, []  # reported by parse_structure
    good, problems = {}, []
    for name, body in raw_sources.items():
        try:
            good[str(name)] = SourceSpec.model_validate(body)
        except ValidationError as exc:
            problems += pydantic_problems(exc, ("sources", str(name)))
    return good, problems
