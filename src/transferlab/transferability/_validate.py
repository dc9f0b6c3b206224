"""Input checks shared by every transferability estimator.

Estimators take features (n_samples, dim), probabilities (n_samples, n_source_classes),
source hard labels (n_samples,) and target labels (n_samples,), as numpy arrays or torch
tensors. Everything is converted to float64 numpy here: evidence and log-determinants of
d x d Gram matrices lose digits in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transferlab.errors import UserError

ArrayLike = Any  # numpy array, torch tensor, or nested lists of numbers


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a numpy array (torch tensors detached and moved to the CPU)."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            t = x.detach().cpu()
            return (t.double() if t.is_floating_point() and t.dtype not in
                    (torch.float32, torch.float64) else t).numpy()
    except ImportError:  # torch is optional for the estimators themselves
        pass
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name} could not be read as an array ({exc}); "
                        "pass a numpy array or torch tensor") from exc
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number)
                                    or arr.dtype == np.bool_):
        raise UserError(f"{name} has dtype {arr.dtype}: allowed are real numbers; "
                        "pass a numeric numpy array or torch tensor")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise UserError(f"{name} contains {bad} NaN or inf values: allowed are finite "
                        "numbers; check the model for divergence or drop those samples")


def as_features(x: ArrayLike, name: str = "features") -> np.ndarray:
    """A finite 2-D float64 matrix (n_samples, dim)."""
    arr = to_numpy(x, name)
    if arr.ndim != 2:
        raise UserError(f"{name} has shape {tuple(arr.shape)}: allowed is a 2-D array "
                        "(n_samples, dim); flatten it first, e.g. x.reshape(len(x), -1)")
    if arr.shape[1] == 0:
        raise UserError(f"{name} has shape {tuple(arr.shape)}: it needs at least one column")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(arr, name)
    return arr


def as_labels(y: ArrayLike, n: int | None = None, name: str = "labels",
              min_per_class: int = 1, why: str = "") -> tuple[np.ndarray, int]:
    """Integer labels 0..C-1 with every class present: returns (labels (n,) int64, C).

    ``n``: the number of samples the labels must match (the features' rows).
    ``min_per_class``: the fewest samples each class needs (``why`` names the estimator).
    """
    arr = to_numpy(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise UserError(f"{name} has shape {tuple(arr.shape)}: allowed is a 1-D array of "
                        "class indices (n_samples,); pass argmax(1) of one-hot labels")
    if n is not None and len(arr) != n:
        raise UserError(f"{name} has {len(arr)} samples but the features have {n}: they "
                        "must be the same inputs in the same order")
    if len(arr) == 0:
        raise UserError(f"{name} is empty: pass at least one sample per class")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
        if not np.all(arr == np.round(arr)):
            raise UserError(f"{name} holds non-integer values: allowed are class indices "
                            "0..C-1; for real-valued targets use logme(..., regression=True)")
    elif arr.dtype.kind not in "iub":
        raise UserError(f"{name} has dtype {arr.dtype}: allowed are integer class indices")
    labels = arr.astype(np.int64)
    if labels.min() < 0:
        raise UserError(f"{name} has a negative value {int(labels.min())}: allowed are "
                        "class indices 0..C-1")
    counts = np.bincount(labels)
    missing = np.flatnonzero(counts == 0)
    if len(missing):
        raise UserError(f"{name} has no sample of class {missing.tolist()[:10]}: allowed are "
                        f"labels 0..C-1 with every class present (C={len(counts)} from the "
                        "largest label); relabel the classes consecutively")
    few = np.flatnonzero(counts < min_per_class)
    if len(few):
        raise UserError(f"{name} has {int(counts[few[0]])} sample(s) of class {int(few[0])}: "
                        f"{why or 'this estimator'} needs at least {min_per_class} per class; "
                        "pass more samples")
    return labels, len(counts)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(n,) int -> (n, C) float64 0/1 matrix."""
    out = np.zeros((len(labels), num_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def class_means(f: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, dim) per-class feature means."""
    # a one-hot matmul: BLAS speed, where np.add.at is ~100x slower on 10^7 entries
    sums = one_hot(labels, num_classes).T @ f
    return sums / np.bincount(labels, minlength=num_classes)[:, None]
