"""NCE: negative conditional entropy (Tran, Nguyen & Hassner, ICCV 2019).

With z_i the source's hard label on target input i (the argmax of its head) and y_i the
target label, the empirical joint P(y, z) = #{i: y_i = y, z_i = z} / n gives

    NCE = -H(Y | Z) = sum_{y, z} P(y, z) log( P(y, z) / P(z) )     (nats; always <= 0),

0 exactly when the source label determines the target label.
"""

from __future__ import annotations

import numpy as np

from transferlab.errors import UserError
from transferlab.transferability._validate import ArrayLike, as_labels, to_numpy


def _source_labels(z: ArrayLike, n: int) -> np.ndarray:
    arr = to_numpy(z, "source_labels")
    if arr.ndim != 1 or len(arr) != n:
        raise UserError(f"source_labels has shape {tuple(arr.shape)}: allowed is (n_samples,) "
                        f"with n_samples={n} as in labels; pass source_probs.argmax(1)")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and np.all(arr == np.round(arr))):
        raise UserError("source_labels holds non-integer or non-finite values: allowed are "
                        "class indices >= 0; pass source_probs.argmax(1)")
    if arr.dtype.kind not in "iubf":
        raise UserError(f"source_labels has dtype {arr.dtype}: allowed are class indices")
    arr = arr.astype(np.int64)
    if len(arr) and arr.min() < 0:
        raise UserError(f"source_labels has a negative value {int(arr.min())}: allowed are "
                        "class indices >= 0")
    return arr


def nce(source_labels: ArrayLike, labels: ArrayLike) -> float:
    """-H(Y | Z) of target ``labels`` given the source's hard labels.

    Args:
        source_labels: (n_samples,) the source head's argmax on the target inputs (any
            non-negative indices; the source label space may differ from the target's).
        labels: (n_samples,) target classes 0..C-1, every class with >= 2 samples.
    Returns:
        NCE in [-log C, 0]; higher is better.
    """
    y, c = as_labels(labels, min_per_class=2, why="nce")
    z = _source_labels(source_labels, len(y))
    # compact the source labels that occur, so a 1000-class head costs nothing extra
    _, z = np.unique(z, return_inverse=True)
    joint = np.bincount(y * (z.max() + 1) + z, minlength=c * (z.max() + 1)).reshape(c, -1)
    joint = joint / len(y)
    pz = joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / pz)[nz])))
