"""Accuracy, NLL, Brier score and disagreement, for one model or an ensemble.

An ensemble's prediction is the mean of its members' probabilities (the usual deep-ensemble
rule). ``ensemble_metrics`` reports the metrics of that mean and the members' average of
each metric, so the gain of ensembling can be read off (accuracy vs member_accuracy).
"""

from __future__ import annotations

import torch

from transferlab.errors import bad_value
from transferlab.metrics._validate import check_probs
from transferlab.metrics.calibration import ece

# log(p) of a probability rounded to 0 would be -inf: clamp as torch.nn.NLLLoss users do
# with log(p + eps); a float32 softmax never returns less than ~1e-45 unless it underflows.
_EPS = 1e-12


def accuracy(probs, labels) -> float:
    """Top-1 accuracy of ``probs`` (N, C) against ``labels`` (N,)."""
    p, y = check_probs(probs, labels, members=False)
    return float((p.argmax(1) == y).double().mean())


def nll(probs, labels) -> float:
    """Mean negative log-likelihood -log p[y] of ``probs`` (N, C) (clamped at 1e-12)."""
    p, y = check_probs(probs, labels, members=False)
    return float(-p.gather(1, y[:, None]).clamp_min(_EPS).log().mean())


def brier(probs, labels) -> float:
    """Brier score: mean over samples of sum_c (p_c - [c == y])^2; in [0, 2]."""
    p, y = check_probs(probs, labels, members=False)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).double()
    return float(((p - onehot) ** 2).sum(1).mean())


def disagreement(member_probs) -> float:
    """Mean pairwise disagreement of ``member_probs`` (M, N, C), M >= 2.

    torch-uncertainty's definition: per sample, 1 - (member pairs with the same top-1
    prediction) / (M (M - 1) / 2), averaged over samples. Identical members give 0.
    """
    p = torch.as_tensor(member_probs).detach().cpu() if not isinstance(member_probs, torch.Tensor) \
        else member_probs.detach().cpu()
    if p.dim() != 3:
        raise bad_value("member_probs", f"shape {tuple(p.shape)}",
                        "a 3-D array (M members, N samples, C classes)")
    m, _, c = p.shape
    if m < 2:
        raise bad_value("members", m, "at least 2 (disagreement is between pairs of members)",
                        "pass two or more members' probabilities")
    preds = p.argmax(-1)                                        # (M, N)
    counts = torch.nn.functional.one_hot(preds, c).sum(0).double()  # (N, C) votes per class
    agreeing = (counts * (counts - 1) / 2).sum(1)               # pairs that agree, per sample
    return float((1 - agreeing / (m * (m - 1) / 2)).mean())


def ensemble_metrics(member_probs, labels, n_bins: int = 15) -> dict[str, float | int | None]:
    """Metrics of an ensemble from its members' probabilities ``member_probs`` (M, N, C).

    Returns ``accuracy``, ``nll``, ``brier``, ``ece`` of the mean prediction;
    ``member_accuracy``, ``member_nll``, ``member_brier`` (mean over members of each
    member's value); ``disagreement`` (None for one member); ``members`` (M).
    """
    p, y = check_probs(member_probs, labels, members=True)
    mean = p.mean(0)
    mean = mean / mean.sum(1, keepdim=True)  # exact normalisation after float averaging
    return {
        "accuracy": accuracy(mean, y), "nll": nll(mean, y), "brier": brier(mean, y),
        "ece": ece(mean, y, n_bins),
        "member_accuracy": float(sum(accuracy(q, y) for q in p) / len(p)),
        "member_nll": float(sum(nll(q, y) for q in p) / len(p)),
        "member_brier": float(sum(brier(q, y) for q in p) / len(p)),
        "disagreement": disagreement(p) if len(p) >= 2 else None,
        "members": len(p),
    }
