"""Sweeps: grids of transfer trials run into a resumable SQLite store.

>>> from transferlab.sweep import run_sweep, aggregate
>>> df = run_sweep("examples/depth_sweep.yaml", "runs/depth.sqlite")   # doctest: +SKIP
>>> aggregate(df, by=["protocol", "depth"])                            # doctest: +SKIP

See docs/sweeps.md for the spec format and resume semantics.
"""

from transferlab.sweep.grid import Cell, Plan, plan_sweep
from transferlab.sweep.results import aggregate, load_results
from transferlab.sweep.runner import SweepInterrupted, run_sweep
from transferlab.sweep.spec import PretrainSpec, SourceSpec, SweepSpec
from transferlab.sweep.store import Store, trial_key

__all__ = ["Cell", "Plan", "PretrainSpec", "SourceSpec", "Store", "SweepInterrupted",
           "SweepSpec", "aggregate", "load_results", "plan_sweep", "run_sweep", "trial_key"]
