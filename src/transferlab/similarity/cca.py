"""Canonical correlation analysis similarities: SVCCA and PWCCA.

* CCA finds directions a_i of X and b_i of Y whose projections (canonical variates) are
  maximally correlated; the correlations rho_1 >= rho_2 >= ... are the singular values of
  U_x^T U_y, with U_x, U_y orthonormal bases of the centred column spaces. They are
  invariant to any invertible linear map of either representation.
* SVCCA (Raghu et al. 2017): first keep the top singular directions of each representation
  that explain ``keep`` of its variance (dropping noise directions), then CCA; the score is
  the mean canonical correlation.
* PWCCA (Morcos, Raghu, Bengio 2018): a weighted mean of the canonical correlations, each
  weighted by how much of the representation its canonical variate accounts for,
  alpha_i ~ sum_j |<h_i, x_j>| over the (centred) neurons x_j. As in the reference code, the
  side with fewer directions supplies the weights.

CCA needs many more samples than directions: when rank(X) + rank(Y) > n the two column
spaces must intersect and some correlations are 1 for any data. We warn in that case.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from transferlab.errors import UserError
from transferlab.similarity._validate import ArrayLike, centre, check_pair


def _svd_basis(x: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin SVD of centred x (n, p): orthonormal basis U (n, r) of its column space and the
    singular values S (r,), r = numerical rank (same tolerance as numpy.linalg.matrix_rank)."""
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    tol = float(s[0]) * max(x.shape) * torch.finfo(torch.float64).eps if s.numel() else 0.0
    r = int((s > tol).sum())
    if r == 0:
        raise UserError(f"{name} has no variance across samples (every row is the same after "
                        "centring), so CCA is undefined; check for a dead or constant layer")
    return u[:, :r], s[:r]


def _cca(ux: torch.Tensor, uy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CCA of two orthonormal bases (n, rx), (n, ry).

    Returns rho (m,) descending in [0, 1], and the unit-norm canonical variates of each side,
    hx (n, m) and hy (n, m), m = min(rx, ry).
    """
    n, rx, ry = ux.shape[0], ux.shape[1], uy.shape[1]
    if rx + ry > n:
        warnings.warn(f"CCA with n_samples={n} and ranks {rx} + {ry} > n: the column spaces "
                      "must overlap, so some canonical correlations are 1 whatever the data; "
                      "use more samples, or svcca with a lower keep", UserWarning, stacklevel=3)
    a, rho, bh = torch.linalg.svd(ux.T @ uy, full_matrices=False)
    m = rho.shape[0]
    return rho.clamp(0.0, 1.0), ux @ a[:, :m], uy @ bh[:m].T


def cca_correlations(X: ArrayLike, Y: ArrayLike) -> np.ndarray:
    """Canonical correlations between X (n, p) and Y (n, q), descending, shape (min rank,)."""
    x, y = check_pair(X, Y, min_samples=2)
    ux, _ = _svd_basis(centre(x), "X")
    uy, _ = _svd_basis(centre(y), "Y")
    rho, _, _ = _cca(ux, uy)
    return rho.cpu().numpy()


def _keep_directions(u: torch.Tensor, s: torch.Tensor, keep: float) -> torch.Tensor:
    """The top-k singular directions explaining at least ``keep`` of the variance: (n, k)."""
    frac = torch.cumsum(s**2, 0) / (s**2).sum()
    # 1e-12: cumulative sums of float64 can miss keep=1.0 by rounding on the last term
    k = int((frac < keep - 1e-12).sum()) + 1
    return u[:, : min(k, u.shape[1])]


def svcca(X: ArrayLike, Y: ArrayLike, keep: float = 0.99) -> float:
    """SVCCA: mean canonical correlation after keeping the singular directions of X (n, p)
    and Y (n, q) that explain ``keep`` (0 < keep <= 1) of each one's variance.

    ``keep=1.0`` keeps every direction, i.e. plain mean CCA.
    """
    if (isinstance(keep, bool) or not isinstance(keep, numbers.Real)
            or not 0.0 < float(keep) <= 1.0):
        raise UserError(f"keep={keep!r} is invalid: allowed is a fraction of variance in "
                        "(0, 1]; pass e.g. keep=0.99")
    x, y = check_pair(X, Y, min_samples=2)
    ux = _keep_directions(*_svd_basis(centre(x), "X"), keep)
    uy = _keep_directions(*_svd_basis(centre(y), "Y"), keep)
    rho, _, _ = _cca(ux, uy)
    return float(rho.mean())


def pwcca(X: ArrayLike, Y: ArrayLike) -> float:
    """Projection-weighted CCA between X (n, p) and Y (n, q) (Morcos et al. 2018).

    The side with the lower rank (X on ties) gives the weights
    alpha_i = sum_j |<h_i, x_j>| / sum_i sum_j |<h_i, x_j>|, h_i its unit canonical
    variates and x_j its centred neurons; returns sum_i alpha_i rho_i. Not invariant to
    invertible linear maps (the weights depend on the neuron basis), unlike plain CCA.
    """
    x, y = check_pair(X, Y, min_samples=2)
    xc, yc = centre(x), centre(y)
    ux, _ = _svd_basis(xc, "X")
    uy, _ = _svd_basis(yc, "Y")
    rho, hx, hy = _cca(ux, uy)
    h, acts = (hx, xc) if ux.shape[1] <= uy.shape[1] else (hy, yc)
    weights = (h.T @ acts).abs().sum(dim=1)  # (m,)
    weights = weights / weights.sum()
    return float((weights * rho).sum())
