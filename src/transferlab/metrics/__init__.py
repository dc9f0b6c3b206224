"""Metrics of predictive distributions, for one model or an ensemble (reusable by any study).

>>> import torch
>>> from transferlab.metrics import ensemble_metrics
>>> probs = torch.softmax(torch.randn(5, 100, 10), -1)   # (M members, N samples, C classes)
>>> m = ensemble_metrics(probs, torch.randint(0, 10, (100,)))
>>> sorted(m)   # doctest: +NORMALIZE_WHITESPACE
['accuracy', 'brier', 'disagreement', 'ece', 'member_accuracy', 'member_brier',
 'member_nll', 'members', 'nll']

Definitions (docs/ensembles.md): the ensemble predicts the mean of its members'
probabilities; ECE is torchmetrics' ``MulticlassCalibrationError`` (top-label, equal-width
bins, L1); disagreement is torch-uncertainty's (fraction of member pairs whose top-1
predictions differ, averaged over samples).
"""

from transferlab.metrics.calibration import ece, reliability_bins
from transferlab.metrics.ensemble import (accuracy, brier, disagreement, ensemble_metrics,
                                          nll)
from transferlab.metrics.plot import plot_reliability

__all__ = ["accuracy", "brier", "disagreement", "ece", "ensemble_metrics", "nll",
           "plot_reliability", "reliability_bins"]
