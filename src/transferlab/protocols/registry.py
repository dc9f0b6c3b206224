"""Protocols registered by name, as huggingface/peft registers its tuners.

``get_protocol("freeze:3")`` parses the name, finds the registered config class and
builds it with ``depth=3``. A name that matches nothing is an error listing the names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transferlab.errors import UserError
from transferlab.protocols.core import ProtocolConfig

_REGISTRY: dict[str, tuple[type[ProtocolConfig], bool, str]] = {}


def register_protocol(name: str, config_cls: type[ProtocolConfig], takes_depth: bool,
                      summary: str) -> None:
    """Register ``config_cls`` under ``name``; ``takes_depth`` means ``name:n`` is required."""
    if name in _REGISTRY:
        raise ValueError(f"protocol {name!r} is already registered")
    _REGISTRY[name] = (config_cls, takes_depth, summary)


def register_variant(base: str, suffix: str, summary: str, **defaults) -> str:
    """Register ``base-suffix``: ``base``'s config class with other field defaults (a
    name a sweep can request, e.g. ``finetune-frozen-stats``). Returns the new name."""
    cls, takes_depth, _ = _REGISTRY[base]
    fields = [(k, type(v), dataclasses.field(default=v)) for k, v in defaults.items()]
    variant = dataclasses.make_dataclass(cls.__name__ + suffix.title().replace("-", ""),
                                         fields, bases=(cls,))
    variant.__module__ = cls.__module__
    name = f"{base}-{suffix}"
    shown = f"{base}:n" if takes_depth else base
    register_protocol(name, variant, takes_depth, f"as {shown}, but {summary}")
    return name


@dataclass(frozen=True)
class Protocol:
    """A protocol resolved from its name: ``name`` is canonical (``"freeze:3"``)."""

    name: str
    family: str
    config: ProtocolConfig


def protocol_names() -> dict[str, str]:
    """Registered names (``freeze:n`` style for those that take a depth) -> summary."""
    return {(f"{k}:n" if d else k): s for k, (_, d, s) in _REGISTRY.items()}


def get_protocol(name: str | Protocol, **overrides) -> Protocol:
    """Resolve ``"family"`` or ``"family:n"`` to a ``Protocol``."""
    if isinstance(name, Protocol):
        return name
    family, _, arg = str(name).strip().partition(":")
    allowed = ", ".join(protocol_names())
    if family not in _REGISTRY:
        raise UserError(f"protocol={name!r} is invalid: allowed are {allowed}; "
                        "run `transferlab transfer --help` for what each does")
    cls, takes_depth, _ = _REGISTRY[family]
    if takes_depth:
        if not arg:
            raise UserError(f"protocol={name!r} is invalid: {family} needs a depth, "
                            f"as in '{family}:3' (n = number of transferred blocks) or "
                            f"'{family}:conv3' (up to and including that block)")
        if arg.isascii() and arg.isdigit():  # not "¹": isdigit() says yes, int() no
            overrides = {"depth": int(arg), **overrides}
            canonical = f"{family}:{int(arg)}"
        else:
            overrides = {"upto": arg, **overrides}
            canonical = f"{family}:{arg}"
    else:
        if arg:
            raise UserError(f"protocol={name!r} is invalid: {family} takes no depth; "
                            f"write '{family}'")
        canonical = family
    return Protocol(canonical, family, _build(cls, family, overrides))


def _build(cls: type[ProtocolConfig], family: str, overrides: dict) -> ProtocolConfig:
    """``cls(**overrides)``; an unknown option is an error naming the allowed ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if "lr_mult" in unknown or "layer_decay" in unknown or "l2" in unknown:
        key = next(k for k in ("lr_mult", "layer_decay", "l2") if k in unknown)
        raise UserError(f"protocol option {key}={overrides[key]!r} is invalid: {key} lives in "
                        f"TrainConfig (one home for each setting); pass train={{'{key}': ...}}, "
                        f"--{key.replace('_', '-')}, or a sweep's train: {{{key}: ...}}")
    if unknown:
        raise UserError(f"protocol options {unknown} are invalid for {family}: allowed are "
                        f"{sorted(names)}; check the spelling")
    return cls(**overrides)
