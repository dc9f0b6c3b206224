"""Regularised H-score (Ibrahim, Ponomareva & Mazumder, "Newer is not always better:
Rethinking transferability metrics, their peculiarities, stability and performance",
ECML-PKDD 2022).

The H-score's inverse covariance is unstable when dim is large against n; this variant
uses the Ledoit-Wolf shrinkage estimate Sigma_a = (1 - a) S + a (tr S / dim) I of the
features' covariance S and shrinks the between-class covariance by the same factor:

    H_a(f) = tr( Sigma_a^+ (1 - a) cov(E[f | y]) ),

a the Ledoit-Wolf shrinkage (``sklearn.covariance.LedoitWolf``), covariances with 1/n.
(The thuml reference code takes cov(E[f | y]) with 1/(n - 1): a factor n / (n - 1).)
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from transferlab.transferability._validate import ArrayLike, as_features, as_labels
from transferlab.transferability.hscore import PINV_RCOND, between_class_cov


def regularized_h_score(features: ArrayLike, labels: ArrayLike) -> float:
    """Ledoit-Wolf-shrunk H-score of ``features`` (n_samples, dim) for ``labels`` 0..C-1.

    Every class needs >= 2 samples. Higher is better.
    """
    f = as_features(features)
    y, c = as_labels(labels, len(f), min_per_class=2, why="regularized_h_score")
    f = f - f.mean(0)
    lw = LedoitWolf(assume_centered=True).fit(f)
    inv = np.linalg.pinv(lw.covariance_, rcond=PINV_RCOND, hermitian=True)
    return float((1 - lw.shrinkage_) * np.sum(inv * between_class_cov(f, y, c)))
