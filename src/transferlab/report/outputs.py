"""Where results go: output-path checks made before any work, and strict-JSON values.

A floor below ``cli``, ``studies`` and ``advise`` (all of which write results), so that none
of them imports another for these helpers.
"""

from __future__ import annotations

from pathlib import Path

from transferlab.errors import UserError


def _writable_ancestor(path: Path, param: str, value: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder we can create files in."""
    import os

    anc = path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{param}={value!r} is invalid: {anc} is a file, not a folder; "
                        "allowed is a path inside a folder; pick another path")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"{param}={value!r} is invalid: folder {anc} is not writable; "
                        "allowed is a path in a folder you can write; pick another path")


def check_out_checkpoint(value: str, param: str = "--out", protect: tuple = ()) -> None:
    """Fail before any training if a checkpoint cannot be written at ``value``.

    ``value`` names a checkpoint (``OUT.safetensors`` + ``OUT.json``), not a folder; it must
    not be one of the ``protect``ed checkpoints (e.g. ``--source``: a run must never
    overwrite the model it starts from).
    """
    import os

    from transferlab.checkpoint import checkpoint_paths

    if not value or value.endswith(("/", os.sep)) or Path(value).is_dir():
        raise UserError(f"{param}={value!r} is invalid: it names a folder; allowed is a "
                        "checkpoint path such as runs/src (writes runs/src.safetensors and "
                        "runs/src.json)")
    weights, sidecar = checkpoint_paths(value)
    for p in (weights, sidecar):
        if p.is_dir():
            raise UserError(f"{param}={value!r} is invalid: {p} is a folder; allowed is a "
                            "checkpoint path whose .safetensors/.json are files")
    for other in protect:
        if other and checkpoint_paths(other)[0].resolve() == weights.resolve():
            raise UserError(f"{param}={value!r} is invalid: it would overwrite the source "
                            f"checkpoint {other}; pick another --out")
    _writable_ancestor(weights.parent, param, value)


def check_out_dir(value: str, param: str = "--out") -> None:
    """Fail before any work if ``value`` cannot be (or become) an output folder."""
    p = Path(value)
    if p.exists() and not p.is_dir():
        raise UserError(f"{param}={value!r} is invalid: it is an existing file; allowed is a "
                        "folder (existing or new); pick another path")
    _writable_ancestor(p, param, value)


def json_safe(obj):
    """``obj`` with NaN/inf floats as None, so that ``--json`` output is strict JSON."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
