"""Expected calibration error and the reliability diagram's bins.

The definition is torchmetrics' ``MulticlassCalibrationError(norm="l1")``: the top-label
confidence ``max_c p_c`` of each sample is put in one of ``n_bins`` equal-width bins
``[k/B, (k+1)/B)`` (a confidence of exactly 1 gets a bin of its own, as there), and

    ECE = sum_k (n_k / N) * | acc_k - conf_k |

with acc_k the fraction of correct top-1 predictions in bin k and conf_k their mean
confidence. tests/test_metrics.py checks agreement with torchmetrics to 1e-6.
"""

from __future__ import annotations

import torch

from transferlab.errors import bad_value
from transferlab.metrics._validate import check_probs


def _top_label(probs, labels, n_bins) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked inputs -> top-label confidence (N,), 0/1 correctness (N,) float64 and the
    n_bins + 1 equal-width bin edges on [0, 1]."""
    if not isinstance(n_bins, int) or isinstance(n_bins, bool) or n_bins < 1:
        raise bad_value("n_bins", n_bins, "an integer >= 1", "use 15 (the usual choice)")
    p, y = check_probs(probs, labels, members=False)
    conf, pred = p.max(dim=1)
    correct = (pred == y).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    return conf, correct, edges


def reliability_bins(probs, labels, n_bins: int = 15) -> dict[str, torch.Tensor]:
    """Per-bin statistics of top-label confidence. ``probs`` (N, C), ``labels`` (N,).

    Returns ``{"lower", "upper", "count", "accuracy", "confidence"}``, each (n_bins,) float64
    (empty bins have accuracy and confidence 0). For the plot, a confidence of exactly 1
    counts in the last bin; ``ece`` keeps it in a bin of its own, as torchmetrics does.
    """
    conf, correct, edges = _top_label(probs, labels, n_bins)
    idx = (torch.bucketize(conf, edges, right=True) - 1).clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, idx, torch.ones_like(conf))
    acc = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, idx, correct)
    cs = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, idx, conf)
    safe = count.clamp_min(1)
    return {"lower": edges[:-1], "upper": edges[1:], "count": count,
            "accuracy": acc / safe, "confidence": cs / safe}


def ece(probs, labels, n_bins: int = 15) -> float:
    """Top-label expected calibration error (L1) of ``probs`` (N, C) against ``labels`` (N,).

    Exactly torchmetrics' binning: bins ``[k/B, (k+1)/B)`` plus one for confidence 1.
    """
    conf, correct, edges = _top_label(probs, labels, n_bins)
    idx = torch.bucketize(conf, edges, right=True) - 1  # 0..n_bins (n_bins: conf == 1)
    size = n_bins + 1
    count = torch.zeros(size, dtype=torch.float64).scatter_add_(0, idx, torch.ones_like(conf))
    gap = torch.zeros(size, dtype=torch.float64).scatter_add_(0, idx, conf - correct)
    # sum_k n_k/N |acc_k - conf_k| = sum_k |sum_{i in k} (conf_i - correct_i)| / N
    return float(gap.abs().sum() / count.sum())
