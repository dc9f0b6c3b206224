"""Case sets registered by name: ``get_cases("digits")`` -> list[CaseConfig]."""

from __future__ import annotations

from collections.abc import Callable

from transferlab.cases.core import SPLITS, CaseConfig
from transferlab.errors import bad_value

_SETS: dict[str, tuple[Callable[[], list[CaseConfig]], str]] = {}


def register_cases(name: str, build: Callable[[], list[CaseConfig]], summary: str) -> None:
    """Register a case set; ``build()`` returns its cases (names unique within the set)."""
    if name in _SETS:
        raise ValueError(f"case set {name!r} is already registered")
    _SETS[name] = (build, summary)


def case_sets() -> dict[str, str]:
    """{name: summary} of every registered case set."""
    return {k: v[1] for k, v in sorted(_SETS.items())}


def get_cases(name: str, split: str | None = None) -> list[CaseConfig]:
    """The cases of set ``name`` (only ``split``'s when given: 'dev' or 'heldout')."""
    if name not in _SETS:
        raise bad_value("cases", name, ", ".join(sorted(_SETS)) or "no set registered")
    if split is not None and split not in SPLITS:
        raise bad_value("split", split, " or ".join(SPLITS))
    cases = _SETS[name][0]()
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValueError(f"case set {name!r} repeats a case name")
    return [c for c in cases if split is None or c.split == split]
