"""Where results go: output-path checks made before any work, and strict-JSON values.

A floor below ``cli``, ``studies`` and ``advise`` (all of which write results), so that none
of them imports another for these helpers.
"""

from __future__ import annotations

from transferlab.errors import UserError


def check_out_checkpoint(value: str, param: str = "--out", protect: tuple = ()) -> None:
    """Fail before any training if a checkpoint cannot be written at ``value``.

    ``value`` names a checkpoint (``OUT.safetensors`` + ``OUT.json``), not a folder; it must
    not be one of the ``protect``ed checkpoints (e.g. ``--source``: a run must never
    overwrite the model it starts from). The path rules live in ``transferlab._paths``.
    """
    from transferlab._paths import check_output_checkpoint, checkpoint_files, real

    weights = real(checkpoint_files(value)[0]) if value else None
    for other in protect:
        if other and weights is not None and real(checkpoint_files(other)[0]) == weights:
            raise UserError(f"{param}={value!r} is invalid: it would overwrite the source "
                            f"checkpoint {other}; pick another --out")
    check_output_checkpoint(value, param, {"--source": [p for p in protect if p]})


def check_out_dir(value: str, param: str = "--out", **kwargs) -> None:
    """Fail before any work if ``value`` cannot be (or become) an output folder; see
    ``transferlab._paths.check_output_dir`` for ``inputs``, ``writes`` and ``fills``."""
    from transferlab._paths import check_output_dir

    check_output_dir(value, param, **kwargs)


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
