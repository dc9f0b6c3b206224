"""Orthogonal Procrustes distance (as used by Ding, Denain, Steinhardt 2021).

Centre X (n, p) and Y (n, q) and scale each to unit Frobenius norm. The squared distance
after the best rotation is

    d(X, Y) = min_{Q orthogonal} ||X - Y Q||_F^2 = 2 - 2 ||X^T Y||_*

(||.||_* the nuclear norm, the sum of singular values). When p != q the narrower matrix is
padded with zero columns, which leaves ||X^T Y||_* unchanged, so the formula is used as is.
d is 0 for identical representations up to rotation, translation and isotropic scaling, and
at most 2. It is a *distance* (lower = more similar), and unlike CCA it is not invariant to
non-orthogonal invertible maps.
"""

from __future__ import annotations

import torch

from transferlab.similarity._validate import ArrayLike, centre, check_nonconstant, check_pair


def _row_space_coords(x: torch.Tensor) -> torch.Tensor:
    """For p > n, replace x (n, p) by U S (n, n): x = U S V^T and V has orthonormal columns,
    so every product x^T y has the same singular values as (U S)^T y. Cheaper for wide x."""
    if x.shape[1] <= x.shape[0]:
        return x
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    return u * s


def procrustes_distance(X: ArrayLike, Y: ArrayLike) -> float:
    """Squared orthogonal Procrustes distance 2 - 2 ||X^T Y||_* between X (n, p) and Y (n, q)
    after centring and scaling each to unit Frobenius norm. Returns a float in [0, 2]."""
    x, y = check_pair(X, Y, min_samples=2)
    x, y = centre(x), centre(y)
    nx, ny = float(torch.linalg.matrix_norm(x)), float(torch.linalg.matrix_norm(y))
    check_nonconstant(nx, "X")
    check_nonconstant(ny, "Y")
    x, y = _row_space_coords(x / nx), _row_space_coords(y / ny)
    nuclear = float(torch.linalg.matrix_norm(x.T @ y, ord="nuc"))
    return max(0.0, 2.0 - 2.0 * nuclear)  # clamp rounding below 0 for identical inputs
