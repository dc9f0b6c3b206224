"""TransRate (Huang, Huang, Wang, Wu, Chen & Long, "Frustratingly Easy Transferability
Estimation", ICML 2022): the coding-rate gain of knowing the labels.

With the features centred (Z (n, dim)), the coding rate at distortion eps is
R(Z) = 1/2 log det(I + Z^T Z / (n eps)), and

    TransRate = R(Z) - 1/C sum_c R(Z_c),      Z_c the rows of class c (n_c in its scale),

as in the authors' code (eps = 1e-4 there too). Higher is better.
"""

from __future__ import annotations

import numpy as np

from transferlab.errors import bad_value
from transferlab.transferability._validate import ArrayLike, as_features, as_labels


def coding_rate(z: np.ndarray, eps: float) -> float:
    """1/2 log det(I_dim + Z^T Z / (n eps)) for Z (n, dim)."""
    n, d = z.shape
    # Sylvester: det(I_d + Z^T Z c) = det(I_n + Z Z^T c); factor the smaller one
    gram = z.T @ z if d <= n else z @ z.T
    _, logdet = np.linalg.slogdet(np.eye(len(gram)) + gram / (n * eps))
    return 0.5 * logdet


def transrate(features: ArrayLike, labels: ArrayLike, eps: float = 1e-4) -> float:
    """TransRate of ``features`` (n_samples, dim) for ``labels`` (n_samples,) 0..C-1.

    Every class needs >= 2 samples; ``eps`` > 0 is the distortion.
    """
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise bad_value("eps", eps, "a finite number > 0", "the paper uses eps=1e-4")
    f = as_features(features)
    y, c = as_labels(labels, len(f), min_per_class=2, why="transrate")
    z = f - f.mean(0)
    per_class = [coding_rate(z[y == k], eps) for k in range(c)]
    return float(coding_rate(z, eps) - np.mean(per_class))
