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


def spectral_parts(f: np.ndarray, y: np.ndarray, c: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From the thin SVD of the centred features Fc = U S V^T (k = min(n, dim) directions):
    the covariance's eigenvalues s^2 / n (k,), the class-mean deviations projected on V
    (C, k) and the class weights n_c / n (C,).

    cov(E[f | y]) = sum_c w_c d_c d_c^T with d_c = mean_c - mean, and every d_c lies in the
    row space of Fc, so tr(M^-1 cov(E[f | y])) for any M with the same eigenvectors is
    sum_c w_c sum_j (v_j^T d_c)^2 / m_j: O(n^2 dim) instead of a dim x dim inverse.
    """
    mean = f.mean(0)
    _, sv, vt = np.linalg.svd(f - mean, full_matrices=False)
    proj = (class_means(f, y, c) - mean) @ vt.T
    return sv ** 2 / len(f), proj, np.bincount(y, minlength=c) / len(y)


def h_score(features: ArrayLike, labels: ArrayLike) -> float:
    """H-score of ``features`` (n_samples, dim) for ``labels`` (n_samples,) 0..C-1.

    Every class needs >= 2 samples. Higher is better.
    """
    f = as_features(features)
    y, c = as_labels(labels, len(f), min_per_class=2, why="h_score")
    ev, proj, w = spectral_parts(f, y, c)
    keep = ev > PINV_RCOND * ev.max()  # the pseudo-inverse's cutoff
    return float(np.sum(w[:, None] * proj[:, keep] ** 2 / ev[keep]))
