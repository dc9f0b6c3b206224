"""Regularised H-score (Ibrahim, Ponomareva & Mazumder, "Newer is not always better:
Rethinking transferability metrics, their peculiarities, stability and performance",
ECML-PKDD 2022).

The H-score's inverse covariance is unstable when dim is large against n; this variant
uses the Ledoit-Wolf shrinkage estimate Sigma_a = (1 - a) S + a (tr S / dim) I of the
features' covariance S and shrinks the between-class covariance by the same factor:

    H_a(f) = tr( Sigma_a^+ (1 - a) cov(E[f | y]) ),

a the Ledoit-Wolf shrinkage (``sklearn.covariance.ledoit_wolf_shrinkage``), covariances
with 1/n; computed in the thin SVD of the features (no dim x dim inverse).
(The thuml reference code takes cov(E[f | y]) with 1/(n - 1): a factor n / (n - 1).)
"""

from __future__ import annotations

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage

from transferlab.transferability._validate import ArrayLike, as_features, as_labels
from transferlab.transferability.hscore import spectral_parts


def regularized_h_score(features: ArrayLike, labels: ArrayLike) -> float:
    """Ledoit-Wolf-shrunk H-score of ``features`` (n_samples, dim) for ``labels`` 0..C-1.

    Every class needs >= 2 samples. Higher is better.
    """
    f = as_features(features)
    y, c = as_labels(labels, len(f), min_per_class=2, why="regularized_h_score")
    a = float(ledoit_wolf_shrinkage(f - f.mean(0), assume_centered=True))
    ev, proj, w = spectral_parts(f, y, c)
    mu = ev.sum() / f.shape[1]  # tr(S) / dim, the shrinkage target's scale
    # Sigma_a shares S's eigenvectors: eigenvalues (1 - a) s^2/n + a mu there, a mu elsewhere
    # (where the class-mean deviations have no component)
    return float((1 - a) * np.sum(w[:, None] * proj ** 2 / ((1 - a) * ev + a * mu)))
