"""transferlab: how should I transfer my pretrained network?

The Python API takes any ``torch.nn.Module`` (wrapped as blocks + head)::

    import transferlab as tl
    src = tl.pretrain(tl.make_task("digits:classes=0-4:size=16")).model
    res = tl.transfer(src, tl.make_task("digits:classes=5-9:size=16"), "freeze:3")
"""

__version__ = "0.1.0"

_LAZY = {
    "blocks": "transferlab.models", "build_model": "transferlab.models",
    "wrap": "transferlab.models", "BlockModel": "transferlab.models",
    "make_task": "transferlab.data", "load_dataset": "transferlab.data",
    "TaskSpec": "transferlab.data", "TrainConfig": "transferlab.train",
    "get_protocol": "transferlab.protocols", "protocol_names": "transferlab.protocols",
    "pretrain": "transferlab.api", "transfer": "transferlab.api",
    "TransferResult": "transferlab.api", "save_checkpoint": "transferlab.checkpoint",
    "load_checkpoint": "transferlab.checkpoint", "UserError": "transferlab.errors",
    "load_trial_model": "transferlab.sweep", "load_trial_probs": "transferlab.sweep",
    "advise": "transferlab.advise",
}


# Public subpackages and modules, reachable as ``transferlab.models`` etc. after a bare
# ``import transferlab`` (PEP 562: imported on first access, so the import stays fast).
# ``advise`` is absent on purpose: ``transferlab.advise`` is the function (see _LAZY).
_SUBMODULES = frozenset({
    "analysis", "api", "checkpoint", "data", "ensemble", "errors", "features", "inputs",
    "metrics", "models", "protocols", "provenance", "report", "search", "similarity", "studies",
    "sweep", "train", "transferability",
})


def __getattr__(name: str):
    # Lazy imports keep `transferlab --help` fast and let parts import independently.
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"transferlab.{name}")
    raise AttributeError(f"module 'transferlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


__all__ = sorted(_LAZY)
