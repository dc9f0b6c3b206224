"""k-nearest-neighbour overlap (Doimo et al. 2020, "Hierarchical nucleation in deep networks").

For activations X (n, p) and Y (n, q) of the same n inputs, let N_k^X(i) be the k nearest
neighbours of sample i in X (Euclidean, i itself excluded). The overlap is

    chi_k(X, Y) = 1/n sum_i |N_k^X(i) & N_k^Y(i)| / k,

the fraction of neighbours the two representations share. It is 1 when X and Y order every
sample's neighbours alike (identical representations, or any rotation, translation or isotropic
scaling of one another), about k / (n - 1) for independent representations, and symmetric.
Unlike CKA it looks only at local neighbourhoods, so it tracks where the class (or any) local
structure of two networks stops agreeing. Ties in distance go to the lower sample index.
"""

from __future__ import annotations

import torch

from transferlab.errors import bad_value
from transferlab.similarity._validate import ArrayLike, centre, check_nonconstant, check_pair

DEFAULT_K = 30
_CHUNK_BYTES = 64 * 2**20  # distance rows computed at a time (float64): bounded memory


def _neighbours(x: torch.Tensor, k: int) -> torch.Tensor:
    """(n, k) int64 indices of every row's k nearest other rows of x (n, p), nearest first."""
    n = x.shape[0]
    sq = (x * x).sum(1)
    rows = max(1, _CHUNK_BYTES // (8 * n))
    out = torch.empty((n, k), dtype=torch.int64, device=x.device)
    idx = torch.arange(n, device=x.device)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        # squared distances; clamp the rounding of ||a||^2 + ||b||^2 - 2ab below zero
        d = (sq[s:e, None] + sq[None, :] - 2.0 * (x[s:e] @ x.T)).clamp_min_(0.0)
        d[idx[s:e] - s, idx[s:e]] = float("inf")  # a sample is not its own neighbour
        # a stable sort breaks ties by index, so equal inputs give equal neighbour lists
        out[s:e] = torch.sort(d, dim=1, stable=True).indices[:, :k]
    return out


def knn_overlap(X: ArrayLike, Y: ArrayLike, k: int = DEFAULT_K) -> float:
    """Fraction of shared k nearest neighbours between X (n, p) and Y (n, q), in [0, 1].

    Args:
        X, Y: activations of the same n inputs (rows aligned), numpy or torch.
        k: neighbours per sample, 1 <= k <= n - 1 (default 30, as Doimo et al.).
    Returns: chi_k = mean over samples of |N_k^X(i) & N_k^Y(i)| / k (module docstring).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise bad_value("k", k, "an integer >= 1 (neighbours per sample)", "pass e.g. k=30")
    x, y = check_pair(X, Y, min_samples=2, why="knn_overlap")
    x, y = centre(x), centre(y)  # translation-free; only helps the rounding of distances
    check_nonconstant(float(torch.linalg.matrix_norm(x)), "X")
    check_nonconstant(float(torch.linalg.matrix_norm(y)), "Y")
    n = x.shape[0]
    if k > n - 1:
        raise bad_value("k", k, f"at most n_samples - 1 = {n - 1} (each sample has {n - 1} "
                        "others)", "pass a smaller k or more samples")
    na, nb = _neighbours(x, k), _neighbours(y, k)
    shared = 0
    rows = max(1, _CHUNK_BYTES // max(1, n))
    for s in range(0, n, rows):
        e = min(n, s + rows)
        member = torch.zeros((e - s, n), dtype=torch.bool, device=x.device)
        member.scatter_(1, na[s:e], True)
        shared += int(member.gather(1, nb[s:e]).sum())
    return shared / (n * k)
