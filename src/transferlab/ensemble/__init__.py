"""Ensemble transfer: move an ensemble of M source members to a target task.

>>> from transferlab.ensemble import transfer_ensemble
>>> res = transfer_ensemble("digits:classes=5-9:per_class=20:size=16",
...                         pretrain="digits:classes=0-4:size=16", n_members=3,
...                         strategies=["independent", "shift"])      # doctest: +SKIP
>>> [(r["strategy"], r["accuracy"], r["wall_time_s"]) for r in res.rows]  # doctest: +SKIP

Strategies (one module each, registered by name, written ``"name:field=value"``):
``independent`` (fine-tune every member), ``shift`` (one shared shift vector from r
fine-tuned references + a tiny fine-tune; Shashkov et al. 2022), ``shift-only``, ``tiny``
and ``head-only``. Every strategy runs on the sweep engine (``engine.run_stage``). A saved
ensemble (``out=``) is read by ``add_member`` and ``predict``. See docs/ensembles.md.
"""

from transferlab.ensemble import head_only, independent, shift, tiny  # noqa: F401 (register)
from transferlab.ensemble.manifest import add_member, load_manifest, predict
from transferlab.ensemble.members import apply_shift, shift_vector
from transferlab.ensemble.registry import (StrategyConfig, get_strategy, register_strategy,
                                           strategy_help, strategy_names)
from transferlab.ensemble.run import EnsembleResult, metrics_row, transfer_ensemble

__all__ = ["EnsembleResult", "StrategyConfig", "add_member", "apply_shift", "get_strategy",
           "load_manifest", "metrics_row", "predict", "register_strategy", "shift_vector",
           "strategy_help", "strategy_names", "transfer_ensemble"]
