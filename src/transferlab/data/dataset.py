"""``ImageDataset``: decoded uint8 images with labels, and ``from_arrays`` to build one.

Every loader ends here, so the checks on labels and shapes live in one place
(``validate_split``); task construction can then trust the arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferlab.errors import UserError, bad_value

# Fraction of the examples held out as a test split when a source has no test split
# of its own (KMNIST's test-only release, an image folder without test/, plain arrays).
CARVED_TEST_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A decoded image-classification dataset with an official train/test split.

    Attributes:
        name: short name ("mnist", or the folder/zip stem for image folders).
        x_train: (N, H, W, C) uint8, C in {1, 3}. May be a read-only memory map.
        y_train: (N,) int64 in [0, len(classes)).
        x_test: (M, H, W, C) uint8.
        y_test: (M,) int64.
        classes: class names; label i is ``classes[i]``.
        source: where the arrays came from and how any split was made (for provenance).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        validate_split(self.name, "train", self.x_train, self.y_train, len(self.classes))
        validate_split(self.name, "test", self.x_test, self.y_test, len(self.classes))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise UserError(f"dataset {self.name!r}: train images are {self.x_train.shape[1:]} "
                            f"but test images are {self.x_test.shape[1:]} (H, W, C); "
                            "both splits must have the same image shape")
        counts = np.bincount(self.y_train, minlength=len(self.classes))
        empty = [self.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise UserError(f"dataset {self.name!r}: classes {empty} have no training examples; "
                            "remove those classes or add examples for them")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={self.n_train}, test={self.n_test}, "
                f"classes={self.num_classes}, image_shape={self.image_shape})")


def validate_split(name: str, split: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    """Check one split: x (N, H, W, C) uint8 with C in {1, 3}, y (N,) int64 in range."""
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
        raise UserError(f"dataset {name!r}: x_{split} must be a (N, H, W, C) uint8 array, got "
                        f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if x.shape[3] not in (1, 3):
        raise UserError(f"dataset {name!r}: x_{split} has {x.shape[3]} channels (last axis of "
                        f"shape {x.shape}); allowed is 1 or 3 channels-last")
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
        raise UserError(f"dataset {name!r}: y_{split} must be a (N,) int64 array")
    if len(x) != len(y):
        raise UserError(f"dataset {name!r}: x_{split} has {len(x)} images but y_{split} has "
                        f"{len(y)} labels; they must have the same length")
    if len(y) == 0:
        raise UserError(f"dataset {name!r}: the {split} split is empty")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise UserError(f"dataset {name!r}: y_{split} contains label {bad}; allowed is "
                        f"0..{num_classes - 1} for {num_classes} classes; fix the labels or the "
                        "class list")


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``y`` (N,) into (keep, held_out), ``fraction`` of every class held out.

    Each class is permuted with its own generator seeded by (seed, class), so a class's split
    does not depend on which other classes exist. A class with at least two examples keeps at
    least one and holds out at least one. Both index arrays are sorted.
    """
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        perm = np.random.default_rng([seed, int(c)]).permutation(idx)
        k = int(np.floor(fraction * len(idx) + 0.5))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        held.append(perm[:k])
        keep.append(perm[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _as_images(x, param: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 or float in [0, 1] -> (N, H, W, C) uint8."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise bad_value(param, f"array of shape {x.shape}", "(N, H, W) or (N, H, W, C)",
                        "reshape the images")
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


def from_arrays(x, y, x_test=None, y_test=None, classes: Sequence[str] | None = None,
                name: str = "arrays") -> ImageDataset:
    """Build an ``ImageDataset`` from arrays already in memory.

    Args:
        x: (N, H, W) or (N, H, W, C) images, C in {1, 3}; uint8 0..255 or float in [0, 1].
        y: (N,) integer labels 0..k-1, or string labels (mapped through ``classes``, or
            sorted names when ``classes`` is None).
        x_test, y_test: an official test split in the same formats. When omitted a stratified
            20% (seed 0) of (x, y) is held out as test, and ``source`` says so.
        classes: class names in label order; default "0".."k-1" with k = max label + 1.
        name: dataset name used in messages and task strings.
    """
    x = _as_images(x, "x")
    y, classes = _as_labels(y, "y", classes)
    if len(x) != len(y):
        raise UserError(f"x has {len(x)} images but y has {len(y)} labels; pass one label per "
                        "image")
    if (x_test is None) != (y_test is None):
        raise UserError("pass both x_test and y_test, or neither (then 20% of x is held out)")
    if x_test is not None:
        x_test = _as_images(x_test, "x_test")
        y_test, classes = _as_labels(y_test, "y_test", classes)
        if len(x_test) != len(y_test):
            raise UserError(f"x_test has {len(x_test)} images but y_test has {len(y_test)} "
                            "labels; pass one label per image")
    if classes is None:
        top = max(int(y.max()) if y.size else -1,
                  int(y_test.max()) if y_test is not None and y_test.size else -1)
        classes = [str(i) for i in range(top + 1)]
    source = f"arrays ({len(x)} train"
    if x_test is None:
        keep, held = stratified_holdout(y, CARVED_TEST_FRACTION, seed=0)
        x, y, x_test, y_test = x[keep], y[keep], x[held], y[held]
        source += f", test = stratified {CARVED_TEST_FRACTION:.0%} of them, seed 0)"
    else:
        source += f", {len(x_test)} test)"
    return ImageDataset(name, x, y, x_test, y_test, tuple(classes), source)
