"""``from_arrays`` and ``from_tokens``: a ``Dataset`` from data already in memory.

Images are quantised to uint8 as loaders store them; vectors are kept exactly (only cast to
float32); tokens are kept as ``TokenInputs`` of CPU int64 tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from transferlab.data.dataset import CARVED_TEST_FRACTION, Dataset, stratified_holdout
from transferlab.errors import UserError, bad_value
from transferlab.inputs import TokenInputs

__all__ = ["from_arrays", "from_tokens"]


def _as_images(x: np.ndarray, param: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 or float in [0, 1] -> (N, H, W, C) uint8."""
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[3] not in (1, 3):
        hint = ("; it looks channels-first: pass x.transpose(0, 2, 3, 1)"
                if x.shape[1] in (1, 3) else "")
        raise bad_value(param, f"array of shape {x.shape}", "1 or 3 channels on the last axis",
                        f"convert the images{hint}")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (not np.isfinite(x).all() or x.min() < 0 or x.max() > 1):
            raise bad_value(param, f"float array in [{x.min()}, {x.max()}]",
                            "uint8 0..255 or float in [0, 1]", "rescale the images")
        return np.rint(x * 255).astype(np.uint8)
    raise bad_value(param, f"{x.dtype} array", "uint8 0..255 or float in [0, 1]",
                    "convert the images")


def _as_vectors(x: np.ndarray, param: str) -> np.ndarray:
    """(N, D) real numbers -> (N, D) float32, values kept (float64 is rounded to float32)."""
    if x.dtype.kind not in "iuf":
        raise bad_value(param, f"{x.dtype} array", "(N, D) integer or floating features",
                        "convert the features to floats")
    if x.shape[1] == 0:
        raise bad_value(param, f"array of shape {x.shape}", "at least one feature (D >= 1)")
    out = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(out).all():
        raise bad_value(param, "an array with NaN, inf or values too large for float32",
                        "finite float32 features", "clean or rescale the features")
    return out


def _as_inputs(x, param: str) -> np.ndarray:
    """2-D -> vectors, 3-D / 4-D -> images (see ``from_arrays``)."""
    x = np.asarray(x)
    if x.ndim == 2:
        return _as_vectors(x, param)
    if x.ndim not in (3, 4):
        raise bad_value(param, f"array of shape {x.shape}", "(N, D) vectors, or (N, H, W) or "
                        "(N, H, W, C) images", "reshape the inputs")
    return _as_images(x, param)


def _as_labels(y, param: str, classes: Sequence[str] | None) -> tuple[np.ndarray, Sequence | None]:
    """Labels -> (N,) int64. String labels are mapped through ``classes`` (sorted if None)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise bad_value(param, f"array of shape {y.shape}", "a 1-D array of labels",
                        "flatten it or pass class indices, not one-hot rows")
    if y.dtype.kind in "US":
        names = list(classes) if classes is not None else sorted(set(y.tolist()))
        lookup = {str(n): i for i, n in enumerate(names)}
        unknown = sorted(set(y.tolist()) - lookup.keys())
        if unknown:
            raise bad_value(param, unknown[:5], f"names in classes={names}", "fix the labels")
        return np.array([lookup[v] for v in y.tolist()], dtype=np.int64), names
    if y.dtype.kind == "b" or not (np.issubdtype(y.dtype, np.integer)
                                   or np.issubdtype(y.dtype, np.floating)):
        raise bad_value(param, f"{y.dtype} array", "integer class indices 0..k-1",
                        "convert the labels to integers")
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.equal(np.mod(y, 1), 0)):
        bad = y[np.mod(y, 1) != 0][0]
        raise bad_value(param, f"array containing {bad}", "integer class indices 0..k-1",
                        "convert the labels to integers")
    if y.size and y.min() < 0:
        raise bad_value(param, f"array containing {int(y.min())}", "class indices >= 0",
                        "relabel the classes as 0..k-1")
    return y.astype(np.int64), classes


def _assemble(name: str, x, y, x_test, y_test, classes, label: str) -> Dataset:
    """Shared tail: default class names, the carved test split, the source line."""
    if classes is None:
        top = max(int(y.max()) if y.size else -1,
                  int(y_test.max()) if y_test is not None and y_test.size else -1)
        classes = [str(i) for i in range(top + 1)]
    source = f"{label} ({len(x)} train"
    if x_test is None:
        keep, held = stratified_holdout(y, CARVED_TEST_FRACTION, seed=0)
        x, y, x_test, y_test = x[keep], y[keep], x[held], y[held]
        source += f", test = stratified {CARVED_TEST_FRACTION:.0%} of them, seed 0)"
    else:
        source += f", {len(x_test)} test)"
    return Dataset(name, x, y, x_test, y_test, tuple(classes), source)


def _pair_check(x, y, what: str, suffix: str = "") -> None:
    if len(x) != len(y):
        raise UserError(f"x{suffix} has {len(x)} {what} but y{suffix} has {len(y)} labels; pass "
                        f"one label per {what[:-1]}")


def from_arrays(x, y, x_test=None, y_test=None, classes: Sequence[str] | None = None,
                name: str = "arrays") -> Dataset:
    """Build a ``Dataset`` from arrays already in memory.

    Args:
        x: (N, D) feature vectors (any real dtype; kept exactly as float32: float64 values are
            rounded to the nearest float32, nothing else changes), or images (N, H, W) /
            (N, H, W, C), C in {1, 3}, uint8 0..255 or float in [0, 1] (stored as uint8).
        y: (N,) integer labels 0..k-1, or string labels (mapped through ``classes``, or
            sorted names when ``classes`` is None).
        x_test, y_test: an official test split in the same formats. When omitted a stratified
            20% (seed 0) of (x, y) is held out as test, and ``source`` says so.
        classes: class names in label order; default "0".."k-1" with k = max label + 1.
        name: dataset name used in messages and task strings.
    """
    if hasattr(x, "shape") and len(x.shape) and int(x.shape[0]) == 0:  # before converting
        raise bad_value("x", f"an array of shape {tuple(x.shape)}", "at least one example "
                        "per class (N >= 2)", f"dataset {name!r} has 0 rows: fill x_train")
    x = _as_inputs(x, "x")
    what = "vectors" if x.ndim == 2 else "images"
    y, classes = _as_labels(y, "y", classes)
    _pair_check(x, y, what)
    if (x_test is None) != (y_test is None):
        raise UserError("pass both x_test and y_test, or neither (then 20% of x is held out)")
    if x_test is not None:
        x_test = _as_inputs(x_test, "x_test")
        y_test, classes = _as_labels(y_test, "y_test", classes)
        _pair_check(x_test, y_test, what, "_test")
    return _assemble(name, x, y, x_test, y_test, classes, "arrays")


def _as_tokens(ids, mask, param: str) -> TokenInputs:
    """(N, L) integer ids >= 0 and an optional (N, L) 0/1 mask -> ``TokenInputs`` (int64)."""
    ids = torch.as_tensor(np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids))
    if ids.dim() != 2 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise bad_value(param, f"{str(ids.dtype).removeprefix('torch.')} tensor of shape "
                        f"{tuple(ids.shape)}",
                        "(N, L) integer token ids", "pad the sequences to one length")
    ids = ids.to(torch.int64)
    if ids.numel() and int(ids.min()) < 0:
        raise bad_value(param, f"ids containing {int(ids.min())}", "token ids >= 0")
    if mask is None:
        mask = torch.ones_like(ids)
    mask = torch.as_tensor(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask))
    if tuple(mask.shape) != tuple(ids.shape) or not bool(((mask == 0) | (mask == 1)).all()):
        raise bad_value(f"{param} mask", f"tensor of shape {tuple(mask.shape)}",
                        f"a 0/1 attention mask of the ids' shape {tuple(ids.shape)}")
    return TokenInputs(ids, mask.to(torch.int64))


def from_tokens(input_ids, attention_mask, y, ids_test=None, mask_test=None, y_test=None,
                classes: Sequence[str] | None = None, name: str = "tokens") -> Dataset:
    """Build a token-sequence ``Dataset`` from memory (text tasks without files).

    Args:
        input_ids: (N, L) integer token ids >= 0 (numpy or torch), padded to one length L.
        attention_mask: (N, L) 1 for a token, 0 for padding; None means all ones.
        y: (N,) labels as in ``from_arrays``.
        ids_test, mask_test, y_test: an official test split (same L); when omitted a
            stratified 20% (seed 0) is held out as test.
        classes, name: as in ``from_arrays``.
    Returns a ``Dataset`` with modality "tokens" whose x are ``TokenInputs`` (int64, CPU).
    """
    x = _as_tokens(input_ids, attention_mask, "input_ids")
    y, classes = _as_labels(y, "y", classes)
    _pair_check(x, y, "sequences")
    if (ids_test is None) != (y_test is None):
        raise UserError("pass both ids_test and y_test, or neither (then 20% is held out)")
    if ids_test is not None:
        x_test = _as_tokens(ids_test, mask_test, "ids_test")
        y_test, classes = _as_labels(y_test, "y_test", classes)
        _pair_check(x_test, y_test, "sequences", "_test")
    else:
        x_test = None
    return _assemble(name, x, y, x_test, y_test, classes, "tokens")
