"""Ensemble-transfer strategies registered by name, written like task strings.

``get_strategy("shift:alpha=0.5:tiny_epochs=2")`` finds the registered config class of
``shift`` and builds it with those fields (each value parsed by the field's type). The
string is the strategy's label in results, so two budgets of one strategy
(``independent`` and ``independent:epochs=3``) are two rows.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from transferlab.errors import UserError, bad_value

if TYPE_CHECKING:
    from transferlab.ensemble.engine import Context, StrategyRun

_REGISTRY: dict[str, tuple[type, str]] = {}


@dataclass
class StrategyConfig:
    """Base of every strategy's config: its fields are the choices, ``run`` the behaviour."""

    name: ClassVar[str] = ""
    # what `ensemble add` does for this strategy: "shift" (delta + tiny fine-tune) or
    # "train" (the strategy's own training of the new member)
    adds_by: ClassVar[str] = "train"

    def check_members(self, m: int) -> None:
        """Raise ``UserError`` if the strategy cannot run with ``m`` members."""
        if m < 1:
            raise bad_value("members", m, "at least 1")

    def run(self, ctx: "Context") -> "StrategyRun":  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def register_strategy(name: str, cls: type, summary: str) -> None:
    if name in _REGISTRY:
        raise ValueError(f"strategy {name!r} is already registered")
    cls.name = name
    _REGISTRY[name] = (cls, summary)


def strategy_names() -> dict[str, str]:
    """Registered names -> one-line summary."""
    return {k: s for k, (_, s) in _REGISTRY.items()}


def _parse_value(cls: type, field: dataclasses.Field, text: str):
    hint = typing.get_type_hints(cls)[field.name]
    kinds = [t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)]
    if text.lower() == "none" and type(None) in typing.get_args(hint):
        return None
    for kind in kinds:
        try:
            if kind is bool:
                if text.lower() in ("true", "1", "yes"):
                    return True
                if text.lower() in ("false", "0", "no"):
                    return False
                continue
            value = kind(text)
            if kind is float and not math.isfinite(value):
                return value  # __post_init__ names it
            return value
        except ValueError:
            continue
    raise bad_value(field.name, text, " or ".join(k.__name__ for k in kinds),
                    f"write e.g. {field.name}={field.default!r}")


def get_strategy(spec: "str | StrategyConfig") -> StrategyConfig:
    """``"name[:field=value]..."`` -> the registered strategy's config."""
    if isinstance(spec, StrategyConfig):
        return spec
    name, *opts = str(spec).strip().split(":")
    if name not in _REGISTRY:
        raise UserError(f"strategy={spec!r} is invalid: allowed are "
                        f"{', '.join(_REGISTRY)}; options as in 'shift:alpha=0.5'")
    cls = _REGISTRY[name][0]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for opt in opts:
        key, eq, text = opt.partition("=")
        if not eq or key not in fields:
            raise UserError(f"strategy option {opt!r} of {name!r} is invalid: allowed are "
                            f"{', '.join(f'{k}=...' for k in fields) or 'none'}")
        kwargs[key] = _parse_value(cls, fields[key], text)
    return cls(**kwargs)


def strategy_help() -> str:
    """Every strategy with its options and their help, for ``--help``."""
    parts = []
    for name, (cls, summary) in _REGISTRY.items():
        opts = ", ".join(f"{f.name} ({f.default!r}: {f.metadata.get('help', '')})"
                         for f in dataclasses.fields(cls))
        parts.append(f"{name}: {summary}" + (f" Options: {opts}" if opts else ""))
    return " | ".join(parts)
