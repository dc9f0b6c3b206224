"""Transferability estimators: how well will a source model (or a depth of it) transfer to a
target task, judged from one frozen forward pass, without fine-tuning.

Each estimator is a numpy function (torch tensors accepted, float64 inside) in its own
module; ``ESTIMATORS`` registers them by the names the CLI uses. ``score(model, task,
metric, depth)`` runs a model on a task's train split and applies one. See
docs/transferability.md.
"""

from __future__ import annotations

from transferlab.transferability.hscore import h_score
from transferlab.transferability.leep import leep
from transferlab.transferability.logme import logme
from transferlab.transferability.nce import nce
from transferlab.transferability.reg_hscore import regularized_h_score
from transferlab.transferability.registry import ESTIMATORS, Estimator, get_estimator
from transferlab.transferability.score import (extract_features, score, score_all,
                                               source_probabilities)
from transferlab.transferability.transrate import transrate

__all__ = ["ESTIMATORS", "Estimator", "extract_features", "get_estimator", "h_score", "leep",
           "logme", "nce", "regularized_h_score", "score", "score_all", "source_probabilities",
           "transrate"]
