"""LEEP: log expected empirical prediction (Nguyen, Hassner, Seeger & Archambeau, ICML 2020).

With theta_i (Z,) the source head's softmax on target input i, the empirical joint of
target label y and source label z is P(y, z) = 1/n sum_{i: y_i = y} theta_i(z), the
conditional P(y | z) = P(y, z) / P(z), and

    LEEP = 1/n sum_i log( sum_z P(y_i | z) theta_i(z) )      (natural log; always <= 0).

It is the average log-likelihood of the "expected empirical predictor", a classifier that
maps the source head's prediction to target labels through P(y | z).
"""

from __future__ import annotations

import numpy as np

from transferlab.errors import UserError
from transferlab.transferability._validate import ArrayLike, as_features, as_labels, one_hot

ROW_SUM_TOL = 1e-4  # float32 softmax rows sum to 1 within ~1e-6


def check_probs(source_probs: ArrayLike, name: str = "source_probs") -> np.ndarray:
    """(n, Z) float64 rows of probabilities (non-negative, summing to 1)."""
    p = as_features(source_probs, name)
    if p.min() < 0:
        raise UserError(f"{name} has a negative entry {p.min():.3g}: allowed are "
                        "probabilities; pass softmax(logits, dim=1), not logits")
    worst = float(np.abs(p.sum(1) - 1).max())
    if worst > ROW_SUM_TOL:
        raise UserError(f"{name} has a row whose sum is {worst:.3g} away from 1: allowed are "
                        f"rows of probabilities summing to 1 (within {ROW_SUM_TOL}); pass "
                        "softmax(logits, dim=1), not logits")
    return p


def leep(source_probs: ArrayLike, labels: ArrayLike) -> float:
    """LEEP of a source head's probabilities for target ``labels``.

    Args:
        source_probs: (n_samples, n_source_classes) softmax of the source head on the
            target inputs; the source label space may differ from the target's.
        labels: (n_samples,) target classes 0..C-1, every class with >= 2 samples.
    Returns:
        LEEP in (-inf, 0]; higher is better.
    """
    theta = check_probs(source_probs)
    y, c = as_labels(labels, len(theta), min_per_class=2, why="leep")
    joint = one_hot(y, c).T @ theta / len(y)          # (C, Z): P(y, z)
    pz = joint.sum(0)                                   # (Z,): P(z)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)  # P(y | z)
    eep = np.einsum("iz,iz->i", theta, cond[y])         # sum_z P(y_i | z) theta_i(z)
    return float(np.mean(np.log(eep)))
