"""Centred kernel alignment (Kornblith, Norouzi, Lee, Hinton 2019).

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K = k(X), L = k(Y)
of the same n inputs seen by two layers. It is invariant to orthogonal transforms and
isotropic scaling of the features, not to arbitrary invertible maps (unlike CCA).

* Biased HSIC: tr(K H L H) / (n - 1)^2 with H = I - 11^T / n (Gretton et al. 2005).
* Unbiased HSIC (Song et al. 2012), used by ``debiased=True``: with K~, L~ the Gram matrices
  with zeroed diagonals,
  ``[tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))``.
  We compute it through the equivalent "U-centring" of Szekely & Rizzo (2014), as
  Kornblith's reference notebook does, because it is more stable numerically.

Linear CKA has two exact forms: the n x n Gram form and the feature-space form
``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred features, which costs
O(n (p+q)^2) instead of O(n^2 (p+q)) and never builds an n x n matrix. ``method="auto"``
picks the cheaper one. All arithmetic is float64 (see ``_validate``).
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np
import torch

from transferlab.errors import UserError
from transferlab.similarity._validate import (ArrayLike, centre, check_nonconstant, check_pair,
                                              column_means)

DEBIASED_MIN_SAMPLES = 4  # the unbiased HSIC divides by n (n - 3)


def gram_linear(x: torch.Tensor) -> torch.Tensor:
    """Linear kernel Gram matrix: (n, p) -> (n, n) = X X^T."""
    if x.device.type == "cpu":
        # numpy runs a @ a.T of one buffer as a symmetric rank-k update (BLAS syrk), about
        # twice as fast as torch's general matmul on CPU
        a = x.numpy()
        return torch.from_numpy(a @ a.T)
    return x @ x.T


def gram_rbf(x: torch.Tensor, threshold: float = 1.0, name: str = "X") -> torch.Tensor:
    """RBF kernel Gram matrix (n, p) -> (n, n): exp(-d_ij^2 / (2 sigma^2)).

    sigma = threshold * sqrt(median of the n x n squared-distance matrix). As in Kornblith's
    reference notebook, the median is over all n^2 entries, the n zeros of the diagonal
    included.
    """
    dots = x @ x.T
    sq_norms = torch.diagonal(dots)
    sq_dist = (sq_norms[:, None] + sq_norms[None, :] - 2.0 * dots).clamp_min_(0.0)
    sq_dist.fill_diagonal_(0.0)  # exact zeros; rounding can leave tiny positives
    # np.median averages the two middle values; torch.median would take the lower one.
    median = float(np.median(sq_dist.cpu().numpy()))
    if not median > 0.0:
        raise UserError(f"{name}: the median squared distance between samples is 0 (at least "
                        "half of the sample pairs are identical), so the RBF bandwidth is 0; "
                        "pass more distinct samples or use linear_cka")
    return torch.exp(-sq_dist / (2.0 * threshold**2 * median))


def centre_gram(gram: torch.Tensor, unbiased: bool = False, inplace: bool = False) -> torch.Tensor:
    """Centre a symmetric Gram matrix (n, n) -> (n, n); a new tensor unless ``inplace``.

    ``unbiased=False``: H K H. ``unbiased=True``: the U-centred matrix of Szekely & Rizzo,
    whose inner products <K_u, L_u> equal n (n - 3) times the unbiased HSIC of Song et al.
    """
    if not inplace:
        gram = gram.clone()
    n = gram.shape[0]
    if unbiased:
        gram.fill_diagonal_(0.0)
        means = gram.sum(dim=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        gram.fill_diagonal_(0.0)
    else:
        means = gram.mean(dim=0)
        means -= means.mean() / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def cka_from_centred_grams(kc: torch.Tensor, lc: torch.Tensor, names=("X", "Y")) -> float:
    """CKA from two already centred (or U-centred) Gram matrices (n, n)."""
    num = float((kc * lc).sum())
    nx = float((kc * kc).sum())
    ny = float((lc * lc).sum())
    check_nonconstant(nx, names[0])
    check_nonconstant(ny, names[1])
    return num / (nx**0.5 * ny**0.5)


def _debiased_dot(xty_sq: float, rows_x: np.ndarray, rows_y: np.ndarray,
                  sq_x: float, sq_y: float, n: int) -> float:
    """n (n - 3) * unbiased HSIC for linear kernels, from centred-feature statistics.

    With centred features, K 1 = 0, so Song's formula reduces to
    ||X^T Y||^2 - n/(n-2) diag(K).diag(L) + ||X||^2 ||Y||^2 / ((n-1)(n-2)).
    """
    return float(xty_sq - n / (n - 2.0) * (rows_x @ rows_y)
                 + sq_x * sq_y / ((n - 1.0) * (n - 2.0)))


# Rows per chunk in the feature-space form: big enough for efficient BLAS, small enough
# that the float64 centred copy stays a few MB instead of a second copy of the activations.
_CHUNK_ROWS = 2048
# Single precision halves the memory per row, and BLAS runs faster on taller blocks:
# 16,384 rows (two 2,048-feature buffers: 270 MB) measured 0.97 s vs 1.14 s at 2,048 rows.
_CHUNK_ROWS_FLOAT32 = 16384


def _feature_stats_numpy(x: np.ndarray, y: np.ndarray, mx: np.ndarray, my: np.ndarray,
                        dtype=np.float64):
    """Stream centred chunks of x (n, p), y (n, q) through BLAS in ``dtype``.

    With float32, each chunk's products run in single precision (twice the speed) and are
    summed in float64, so rounding stays that of one chunk.

    Returns ||X^T Y||^2, ||X^T X||^2, ||Y^T Y||^2 and the squared row norms (n,) of both,
    all of centred X, Y. ``a.T @ a`` of one buffer runs as a symmetric rank-k update (syrk),
    half the work of a general product.
    """
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    rows = min(_CHUNK_ROWS_FLOAT32 if dtype == np.float32 else _CHUNK_ROWS, n)
    bx, by = np.empty((rows, p), dtype), np.empty((rows, q), dtype)
    xtx, yty, xty = np.zeros((p, p)), np.zeros((q, q)), np.zeros((p, q))
    tx, ty, txy = np.empty((p, p), dtype), np.empty((q, q), dtype), np.empty((p, q), dtype)
    rows_x, rows_y = np.empty(n), np.empty(n)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        cx, cy = bx[: stop - start], by[: stop - start]
        np.subtract(x[start:stop], mx, out=cx)
        np.subtract(y[start:stop], my, out=cy)
        xtx += np.matmul(cx.T, cx, out=tx)
        yty += np.matmul(cy.T, cy, out=ty)
        xty += np.matmul(cx.T, cy, out=txy)
        rows_x[start:stop] = np.einsum("ij,ij->i", cx, cx, dtype=np.float64)
        rows_y[start:stop] = np.einsum("ij,ij->i", cy, cy, dtype=np.float64)
    sq = lambda m: float(np.einsum("ij,ij->", m, m))  # noqa: E731 - squared Frobenius norm
    return sq(xty), sq(xtx), sq(yty), rows_x, rows_y


def _feature_stats_torch(x: torch.Tensor, y: torch.Tensor, mx: torch.Tensor, my: torch.Tensor):
    """As ``_feature_stats_numpy`` for tensors on an accelerator (one shot, float64)."""
    xc = x.to(torch.float64) - mx
    yc = y.to(device=x.device, dtype=torch.float64) - my.to(x.device)
    sq = lambda m: float(torch.linalg.matrix_norm(m) ** 2)  # noqa: E731
    return (sq(xc.T @ yc), sq(xc.T @ xc), sq(yc.T @ yc),
            (xc * xc).sum(dim=1).cpu().numpy(), (yc * yc).sum(dim=1).cpu().numpy())


def _is_float32(a) -> bool:
    return getattr(a, "dtype", None) in (np.float32, torch.float32)


def _cpu_numpy(a):
    """CPU tensors as numpy views (no copy), so they take the chunked BLAS path too."""
    if isinstance(a, torch.Tensor) and a.device.type == "cpu":
        return a.detach().numpy()
    return a


def _linear_cka_features(x, y, debiased: bool, precision: str = "float64") -> float:
    """Feature-space linear CKA of unconverted x (n, p), y (n, q); cost O(n (p + q)^2),
    memory O((p + q)^2) beyond the inputs."""
    x, y = _cpu_numpy(x), _cpu_numpy(y)
    mx, my = column_means(x, "X"), column_means(y, "Y")
    if isinstance(x, np.ndarray) and isinstance(y, np.ndarray):
        xty, xtx, yty, rows_x, rows_y = _feature_stats_numpy(
            x, y, mx, my, np.float32 if precision == "float32" else np.float64)
    else:
        xt = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
        yt = y if isinstance(y, torch.Tensor) else torch.from_numpy(y)
        xty, xtx, yty, rows_x, rows_y = _feature_stats_torch(
            xt, yt, torch.as_tensor(mx, device=xt.device), torch.as_tensor(my))
    if debiased:
        n = x.shape[0]
        sq_x, sq_y = rows_x.sum(), rows_y.sum()
        num = _debiased_dot(xty, rows_x, rows_y, sq_x, sq_y, n)
        nx = _debiased_dot(xtx, rows_x, rows_x, sq_x, sq_x, n)
        ny = _debiased_dot(yty, rows_y, rows_y, sq_y, sq_y, n)
    else:
        num, nx, ny = xty, xtx, yty
    check_nonconstant(nx, "X")
    check_nonconstant(ny, "Y")
    return num / (nx**0.5 * ny**0.5)


def linear_cka(X: ArrayLike, Y: ArrayLike, debiased: bool = False,
               method: Literal["auto", "features", "gram"] = "auto",
               precision: Literal["auto", "float64", "float32"] = "auto") -> float:
    """Linear CKA between activations X (n, p) and Y (n, q); p and q may differ.

    ``debiased``: use the unbiased HSIC estimator (needs n >= 4); it removes the upward bias
    of CKA when n is small compared to the number of features.
    ``method``: "features" (p x q products, best for n >> p), "gram" (n x n Gram matrices,
    best for n << p + q) or "auto" (the cheaper: features when n >= p + q). Both are exact
    and agree to rounding. Returns a float in [0, 1] (debiased values can be slightly < 0).
    ``precision``: "float32" runs the feature-space products in single precision, summed in
    float64: about twice as fast, agreeing with float64 to ~1e-6 (benchmarks/bench_cka.py
    measures both). "auto" (default) follows the inputs: float32 when both are float32 (their
    own precision; nothing is gained by widening them first), else float64. The Gram path
    and accelerator tensors always use float64.
    """
    if precision not in ("auto", "float64", "float32"):
        raise UserError(f"precision={precision!r} is invalid: allowed are 'auto', 'float64', "
                        "'float32'; pass precision='float64' for full precision")
    if precision == "auto":
        precision = "float32" if _is_float32(X) and _is_float32(Y) else "float64"
    if method not in ("auto", "features", "gram"):
        raise UserError(f"method={method!r} is invalid: allowed are 'auto', 'features', "
                        "'gram'; pass method='auto'")
    x, y = check_pair(X, Y, min_samples=DEBIASED_MIN_SAMPLES if debiased else 2,
                      why="the debiased (unbiased HSIC) estimator" if debiased else "",
                      convert=False)
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if method == "features" or (method == "auto" and n >= p + q):
        return _linear_cka_features(x, y, debiased, precision)
    x, y = check_pair(x, y, convert=True)
    x, y = centre(x), centre(y)
    return cka_from_centred_grams(centre_gram(gram_linear(x), debiased, inplace=True),
                                  centre_gram(gram_linear(y), debiased, inplace=True))


def debiased_linear_cka(X: ArrayLike, Y: ArrayLike) -> float:
    """Linear CKA with the unbiased HSIC estimator: ``linear_cka(X, Y, debiased=True)``."""
    return linear_cka(X, Y, debiased=True)


def rbf_cka(X: ArrayLike, Y: ArrayLike, threshold: float = 1.0, debiased: bool = False) -> float:
    """CKA with RBF kernels between X (n, p) and Y (n, q).

    ``threshold``: bandwidth as a fraction of the median distance, sigma = threshold *
    sqrt(median squared distance), computed separately for X and Y. Builds n x n matrices,
    so memory grows as n^2 (n = 10,000 needs about 2.4 GB).
    """
    if (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
            or not np.isfinite(threshold) or threshold <= 0):
        raise UserError(f"threshold={threshold!r} is invalid: allowed is a finite number > 0 "
                        "(a fraction of the median distance); pass e.g. threshold=1.0")
    x, y = check_pair(X, Y, min_samples=DEBIASED_MIN_SAMPLES if debiased else 2,
                      why="the debiased (unbiased HSIC) estimator" if debiased else "")
    return cka_from_centred_grams(
        centre_gram(gram_rbf(x, threshold, "X"), debiased, inplace=True),
        centre_gram(gram_rbf(y, threshold, "Y"), debiased, inplace=True))
