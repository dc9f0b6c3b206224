"""``Dataset``: examples of one modality with labels and an official train/test split.

Every loader ends here, so the checks on labels and shapes live in one place
(``validate_split``); task construction can then trust the arrays. ``from_arrays`` and
``from_tokens`` (data/arrays.py) build one from memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from transferlab.errors import UserError, bad_value
from transferlab.inputs import TokenInputs

# Fraction of the examples held out as a test split when a source has no test split
# of its own (KMNIST's test-only release, an image folder without test/, plain arrays).
CARVED_TEST_FRACTION = 0.2
MODALITIES = ("image", "vector", "tokens")
_LAYOUT = {"image": "(N, H, W, C) uint8 array with C in {1, 3}",
           "vector": "(N, D) float32 array of finite values",
           "tokens": "TokenInputs with (N, L) int64 input_ids >= 0 and a (N, L) 0/1 mask"}


def infer_modality(x) -> str:
    """"tokens" for ``TokenInputs``, "vector" for a 2-D array, else "image"."""
    if isinstance(x, TokenInputs):
        return "tokens"
    return "vector" if getattr(x, "ndim", None) == 2 else "image"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset with an official train/test split, of one modality.

    Attributes:
        name: short name ("mnist", or the folder/zip stem for image folders).
        x_train: images (N, H, W, C) uint8, C in {1, 3} (may be a read-only memory map);
            vectors (N, D) float32; or tokens: ``TokenInputs`` of CPU tensors (N, L).
        y_train: (N,) int64 in [0, len(classes)).
        x_test: (M, ...) like ``x_train``.
        y_test: (M,) int64.
        classes: class names; label i is ``classes[i]``.
        source: where the arrays came from and how any split was made (for provenance).
        modality: "image", "vector" or "tokens"; inferred from ``x_train`` when None.
    """

    name: str
    x_train: np.ndarray | TokenInputs
    y_train: np.ndarray
    x_test: np.ndarray | TokenInputs
    y_test: np.ndarray
    classes: tuple[str, ...]
    source: str
    modality: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.modality is None:
            object.__setattr__(self, "modality", infer_modality(self.x_train))
        if self.modality not in MODALITIES:
            raise bad_value("modality", self.modality, " or ".join(MODALITIES))
        validate_split(self.name, "train", self.x_train, self.y_train, len(self.classes),
                       self.modality)
        validate_split(self.name, "test", self.x_test, self.y_test, len(self.classes),
                       self.modality)
        if tuple(self.x_train.shape[1:]) != tuple(self.x_test.shape[1:]):
            raise UserError(f"dataset {self.name!r}: train examples are "
                            f"{tuple(self.x_train.shape[1:])} but test examples are "
                            f"{tuple(self.x_test.shape[1:])}; both splits must have the same "
                            "per-example shape")
        counts = np.bincount(self.y_train, minlength=len(self.classes))
        empty = [self.classes[i] for i in np.flatnonzero(counts == 0)]
        if empty:
            raise UserError(f"dataset {self.name!r}: classes {empty} have no training examples; "
                            "remove those classes or add examples for them")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One stored example's shape: (H, W, C) images, (D,) vectors, (L,) tokens."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image; ``UserError`` for datasets that are not images."""
        if self.modality != "image":
            raise UserError(f"dataset {self.name!r} holds {self.modality} inputs of shape "
                            f"{self.input_shape}, not images; use input_shape")
        return self.input_shape  # type: ignore[return-value]

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def __repr__(self) -> str:
        kind = "ImageDataset" if self.modality == "image" else "Dataset"
        return (f"{kind}({self.name!r}, modality={self.modality!r}, train={self.n_train}, "
                f"test={self.n_test}, classes={self.num_classes}, "
                f"input_shape={self.input_shape})")


# Existing code builds and checks ``ImageDataset``: the same container (any modality).
ImageDataset = Dataset


def _check_x(name: str, split: str, x, modality: str) -> None:
    if modality == "tokens":
        ok = (isinstance(x, TokenInputs) and x.input_ids.dim() == 2
              and x.input_ids.dtype == torch.int64 and x.attention_mask.shape == x.input_ids.shape
              and x.input_ids.device.type == "cpu"
              and (x.input_ids.numel() == 0 or int(x.input_ids.min()) >= 0))
        got = (f"input_ids {tuple(x.input_ids.shape)} {x.input_ids.dtype}" if isinstance(
            x, TokenInputs) else type(x).__name__)
    else:
        dtype, ndim = (np.uint8, 4) if modality == "image" else (np.float32, 2)
        ok = isinstance(x, np.ndarray) and x.dtype == dtype and x.ndim == ndim
        if ok and modality == "vector":
            ok = x.shape[1] >= 1 and bool(np.isfinite(x).all())
        got = f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}"
    if not ok:
        raise UserError(f"dataset {name!r}: x_{split} must be a {_LAYOUT[modality]}, got {got}")
    if modality == "image" and x.shape[3] not in (1, 3):
        raise UserError(f"dataset {name!r}: x_{split} has {x.shape[3]} channels (last axis of "
                        f"shape {x.shape}); allowed is 1 or 3 channels-last")


def validate_split(name: str, split: str, x, y: np.ndarray, num_classes: int,
                   modality: str = "image") -> None:
    """Check one split: x in the layout of ``modality`` (see ``Dataset``), y (N,) int64."""
    _check_x(name, split, x, modality)
    if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
        raise UserError(f"dataset {name!r}: y_{split} must be a (N,) int64 array")
    if len(x) != len(y):
        raise UserError(f"dataset {name!r}: x_{split} has {len(x)} examples but y_{split} has "
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
