"""Sweeps: grids of transfer trials run into a resumable SQLite store.

>>> from transferlab.sweep import run_sweep, aggregate
>>> df = run_sweep("examples/depth_sweep.yaml", "runs/depth.sqlite")   # doctest: +SKIP
>>> aggregate(df, by=["protocol", "depth"])                            # doctest: +SKIP

See docs/sweeps.md for the spec format and resume semantics. Names are imported on first
use, so worker processes (which import ``transferlab.sweep.worker``) skip pandas.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Cell": "grid", "Plan": "grid", "plan_sweep": "grid",
    "aggregate": "results", "load_results": "results",
    "SweepInterrupted": "runner", "run_sweep": "runner",
    "PretrainSpec": "spec", "SourceSpec": "spec", "SweepSpec": "spec",
    "Store": "store", "trial_key": "store",
    "load_trial_model": "artifacts", "load_trial_probs": "artifacts",
    "artifacts_root": "artifacts", "DriverLock": "lock",
    "check_trials": "failures", "summarize_failures": "failures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"transferlab.sweep.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'transferlab.sweep' has no attribute {name!r}")
