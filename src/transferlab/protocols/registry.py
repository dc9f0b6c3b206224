"""Protocols registered by name, as huggingface/peft registers its tuners.

``get_protocol("freeze:3")`` parses the name, finds the registered config class and
builds it with ``depth=3``. A name that matches nothing is an error listing the names.
"""

from __future__ import annotations

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
        if arg.isdigit():
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
    return Protocol(canonical, family, cls(**overrides))
