"""Input checks shared by every similarity metric.

Every metric takes two activation matrices X (n_samples, p) and Y (n_samples, q) as numpy
arrays or torch tensors (any float or int dtype, any device). They are converted here to
float64 torch tensors on one device, because HSIC-style sums over many samples lose digits
in float32 and the debiased estimators subtract large, nearly equal terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from transferlab.errors import UserError

ArrayLike = Any  # numpy array, torch tensor, or nested lists of numbers


def as_2d(x: ArrayLike, name: str) -> np.ndarray | torch.Tensor:
    """Check that ``x`` is a real 2D matrix (n_samples, n_features) without converting it.

    Returns a numpy array for numpy input, lists and CPU tensors (a view, no copy, where
    the dtype allows), and a detached tensor for tensors on an accelerator.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex():
            raise UserError(f"{name} is complex ({t.dtype}): allowed are real numbers; "
                            "pass the real part or magnitudes")
        if t.device.type == "cpu":
            # numpy has no bfloat16; float16 sums are too coarse anyway
            arr = (t if t.dtype in (torch.float32, torch.float64) else t.double()).numpy()
        else:
            arr = t
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{name} could not be read as an array ({exc}); "
                            "pass a 2D numpy array or torch tensor") from exc
        if np.iscomplexobj(arr):
            raise UserError(f"{name} is complex ({arr.dtype}): allowed are real numbers; "
                            "pass the real part or magnitudes")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise UserError(f"{name} has dtype {arr.dtype}: allowed are numeric arrays; "
                            "pass a 2D numpy array or torch tensor of numbers")
    if arr.ndim != 2:
        raise UserError(f"{name} has shape {tuple(arr.shape)}: allowed is a 2D array "
                        "(n_samples, n_features); flatten it first, e.g. x.reshape(len(x), -1)")
    if arr.shape[1] == 0:
        raise UserError(f"{name} has shape {tuple(arr.shape)}: it needs at least one feature")
    return arr


def _not_finite_error(name: str, bad: int) -> UserError:
    return UserError(f"{name} contains {bad} NaN or inf values: allowed are finite numbers; "
                     "check the model for divergence or drop those samples")


def column_means(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray | torch.Tensor:
    """Float64 feature means (p,), checking on the way that ``x`` is finite.

    A NaN or inf anywhere makes its column's mean non-finite, so the full elementwise check
    (which allocates an n x p mask) only runs when a mean is non-finite.
    """
    if isinstance(x, torch.Tensor):
        means = x.mean(dim=0, dtype=torch.float64)
        if not bool(torch.isfinite(means).all()):
            bad = int((~torch.isfinite(x)).sum())
            if bad:
                raise _not_finite_error(name, bad)
            raise UserError(f"{name} has values too large for float64 sums; rescale it")
        return means
    means = x.mean(axis=0, dtype=np.float64)
    if not np.isfinite(means).all():
        bad = int((~np.isfinite(x)).sum())
        if bad:
            raise _not_finite_error(name, bad)
        raise UserError(f"{name} has values too large for float64 sums; rescale it")
    return means


def as_float64(x: ArrayLike, name: str, device: torch.device | None = None) -> torch.Tensor:
    """Return ``x`` as a 2D float64 tensor (n_samples, n_features), checked to be finite.

    ``device``: where to put the result; by default the tensor's own device (CPU for numpy).
    """
    arr = as_2d(x, name)
    t = arr if isinstance(arr, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(arr))
    t = t.to(device=device if device is not None else t.device, dtype=torch.float64)
    column_means(t, name)  # cheaper than an elementwise isfinite mask when all is well
    return t


def check_pair(x: ArrayLike, y: ArrayLike, *, min_samples: int = 2, why: str = "",
               convert: bool = True) -> tuple:
    """Validate a pair of activation matrices X (n, p) and Y (n, q) that share their samples.

    ``min_samples``: the fewest rows the estimator needs; ``why`` names the estimator.
    Returns float64 tensors on X's device, or with ``convert=False`` the unconverted
    matrices from ``as_2d`` (then the caller must check finiteness, e.g. ``column_means``).
    """
    ax, ay = as_2d(x, "X"), as_2d(y, "Y")
    if ax.shape[0] != ay.shape[0]:
        raise UserError(f"X has {ax.shape[0]} samples but Y has {ay.shape[0]}: the rows of X "
                        "and Y must be the same inputs in the same order; pass activations "
                        "of both networks on the same batch")
    n = ax.shape[0]
    if n < min_samples:
        raise UserError(f"X and Y have n_samples={n}: {why or 'this metric'} needs at least "
                        f"{min_samples}; pass more samples")
    if not convert:
        return ax, ay
    tx = as_float64(ax, "X")
    return tx, as_float64(ay, "Y", device=tx.device)


def centre(x: torch.Tensor) -> torch.Tensor:
    """Subtract each feature's mean over samples: (n, p) -> (n, p)."""
    return x - x.mean(dim=0, keepdim=True)


def check_nonconstant(value: float, name: str) -> None:
    """Raise when a self-similarity (a normaliser) is zero, which makes a score 0/0."""
    if not value > 0.0:
        raise UserError(f"{name} has no variance across samples (every row is the same "
                        "after centring), so the similarity is 0/0 and undefined; check "
                        "that the layer is not dead or constant, or drop it")
