"""H-score (Bao, Li, Huang, Chen, Zheng & Wang, ICIP 2019).

    H(f) = tr( cov(f)^+ cov(E[f | y]) )

cov(f) (dim, dim) the features' covariance, cov(E[f | y]) the covariance of each sample's
class mean (between-class covariance), both with 1/n; ^+ the pseudo-inverse. Invariant to an
invertible linear map of the features; at most min(C - 1, rank).
"""

from __future__ import annotations

import numpy as np

from transferlab.transferability._validate import ArrayLike, as_features, as_labels, class_means

# Directions whose variance is below 1e-10 of the largest are treated as null. Features
# arrive in float32: their rounding alone gives variances ~1e-14 of the largest, and
# inverting those (the thuml code's rcond=1e-15) makes the score a function of rounding.
PINV_RCOND = 1e-10


def between_class_cov(f: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
    """(dim, dim) covariance of E[f | y] over the samples, with 1/n."""
    dev = class_means(f, y, c) - f.mean(0)
    w = np.bincount(y, minlength=c) / len(y)
    return (dev * w[:, None]).T @ dev


def centred_cov(f: np.ndarray) -> np.ndarray:
    fc = f - f.mean(0)
    return fc.T @ fc / len(f)


def h_score(features: ArrayLike, labels: ArrayLike) -> float:
    """H-score of ``features`` (n_samples, dim) for ``labels`` (n_samples,) 0..C-1.

    Every class needs >= 2 samples. Higher is better.
    """
    f = as_features(features)
    y, c = as_labels(labels, len(f), min_per_class=2, why="h_score")
    inv = np.linalg.pinv(centred_cov(f), rcond=PINV_RCOND, hermitian=True)
    return float(np.sum(inv * between_class_cov(f, y, c)))  # tr(A B) for symmetric B
