"""Tasks: a ``TaskSpec`` applied to an ``ImageDataset`` gives tensors ready for training.

Sampling rules (all deterministic in ``seed``):
  * classes: the subset (then the half) is relabelled 0..k-1 in the order given;
  * validation is carved from each class's training examples *before* any subsampling, so for
    one seed it is the same whatever ``per_class`` / ``fraction`` is;
  * ``per_class`` / ``fraction`` take a prefix of each class's own permutation, so a 5-shot
    set is inside the 10-shot set, and a class's examples do not depend on the other classes;
  * the official test split is only restricted to the chosen classes, never subsampled.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.data.dataset import ImageDataset
from transferlab.data.paths import DataDir
from transferlab.data.sources import load_dataset
from transferlab.data.spec import TaskSpec
from transferlab.errors import UserError, bad_value

__all__ = ["Task", "TaskSpec", "make_task", "split_halves", "resolve_classes", "CLASS_GROUPS"]

# Named class groups, available on any dataset whose classes include all the members.
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "animals": ("bird", "cat", "deer", "dog", "frog", "horse"),
    "vehicles": ("airplane", "automobile", "ship", "truck"),
}
# Predefined dissimilar halves (A, B), as group names; Yosinski et al.'s man-made/natural idea.
DISSIMILAR_HALVES = ("animals", "vehicles")
_SAMPLING_SALT = 7  # keeps task sampling streams apart from the seed-0 test carving streams
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" conversion


def _groups_for(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    have = set(names)
    return {g: members for g, members in CLASS_GROUPS.items() if set(members) <= have}


def resolve_classes(tokens: Sequence[int | str] | None, names: Sequence[str]) -> list[int]:
    """Class tokens (indices, names, group names) -> dataset class indices, in order."""
    if tokens is None:
        return list(range(len(names)))
    groups = _groups_for(names)
    lower = {n.lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for tok in tokens:
        if isinstance(tok, int):
            if tok >= len(names):
                raise bad_value("classes", tok, f"indices 0..{len(names) - 1} or names "
                                f"{list(names)}", "pick classes this dataset has")
            out.append(tok)
        elif tok in groups:
            out += [names.index(m) for m in groups[tok]]
        elif tok.lower() in lower:
            out.append(lower[tok.lower()])
        else:
            extra = f" or groups {sorted(groups)}" if groups else ""
            raise bad_value("classes", tok, f"indices 0..{len(names) - 1}, names "
                            f"{list(names)}{extra}", "pick classes this dataset has")
    if len(set(out)) != len(out):
        raise bad_value("classes", list(tokens), "each class once (groups included)",
                        "remove the overlap")
    return out


def split_halves(classes_or_dataset: ImageDataset | str | int | Sequence[str],
                 split: str = "random", seed: int = 0,
                 data_dir: DataDir = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split classes into halves A and B; returns indices into the given class list.

    ``classes_or_dataset`` is an ``ImageDataset``, a dataset name, a number of classes, or a
    list of class names. ``random``: a seeded permutation, A gets ceil(n/2) classes.
    ``dissimilar``: the predefined halves (A = animals, B = vehicles) where the classes allow.
    Both halves are sorted, disjoint and together cover every class.
    """
    if isinstance(classes_or_dataset, ImageDataset):
        names, label = list(classes_or_dataset.classes), classes_or_dataset.name
    elif isinstance(classes_or_dataset, str):
        ds = load_dataset(classes_or_dataset, data_dir, progress=False)
        names, label = list(ds.classes), ds.name
    elif isinstance(classes_or_dataset, int):
        names, label = [str(i) for i in range(classes_or_dataset)], "these classes"
    else:
        names, label = [str(c) for c in classes_or_dataset], "these classes"
    if len(names) < 2:
        raise bad_value("classes", names, "at least 2 classes to split into halves")
    if split == "random":
        perm = np.random.default_rng(seed).permutation(len(names))
        n_a = len(names) - len(names) // 2
        return tuple(sorted(int(i) for i in perm[:n_a])), tuple(sorted(int(i) for i in perm[n_a:]))
    if split != "dissimilar":
        raise bad_value("split", split, "random or dissimilar")
    groups = {g: set(CLASS_GROUPS[g]) for g in DISSIMILAR_HALVES}
    a = tuple(i for i, n in enumerate(names) if n in groups[DISSIMILAR_HALVES[0]])
    b = tuple(i for i, n in enumerate(names) if n in groups[DISSIMILAR_HALVES[1]])
    if not a or not b or len(a) + len(b) != len(names):
        raise UserError(f"split='dissimilar': {label} has no predefined dissimilar halves (only "
                        "CIFAR-10's classes do: A = animals, B = vehicles); pass explicit "
                        "classes=... for each task instead, e.g. classes=0-4 and classes=5-9")
    return a, b


@dataclass(frozen=True, eq=False)
class Task:
    """Tensors of one task. x_*: (N, C, H, W) float32 in [-1, 1]; y_*: (N,) int64 in [0, k).

    ``class_ids`` are the dataset's class indices in task-label order; ``*_index`` are
    indices into the dataset's train (train, val) and test splits, for provenance.
    """

    spec: TaskSpec
    classes: tuple[str, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_ids: tuple[int, ...] = ()
    train_index: np.ndarray | None = None
    val_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int | tuple[int, int]:
        """H (= W) for square images, else (H, W)."""
        h, w = int(self.x_train.shape[2]), int(self.x_train.shape[3])
        return h if h == w else (h, w)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_val(self) -> int:
        return int(self.x_val.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the data this task actually holds: every split's inputs and labels,
        the class names and a format version. Keys of caches and trials use it, so two tasks
        with the same string but different data (two ``from_arrays`` sets named alike, an
        edited image folder, another ``--data-dir``) never share an entry. Computed once."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = task_fingerprint(self)
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def to(self, device: str | torch.device) -> Task:
        """A copy with every tensor on ``device``."""
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        return dataclasses.replace(self, **moved)

    def __repr__(self) -> str:
        return (f"Task({str(self.spec)!r}, classes={self.num_classes}, train={self.n_train}, "
                f"val={self.n_val}, test={self.n_test}, shape={tuple(self.x_train.shape[1:])}, "
                f"device={self.device})")


FINGERPRINT_VERSION = 1


def task_fingerprint(task: Task) -> str:
    """See ``Task.fingerprint``: hashes the bytes of every split (on CPU, contiguous)."""
    from transferlab.inputs import to_flat

    h = hashlib.sha256(f"transferlab-task-v{FINGERPRINT_VERSION}".encode())
    h.update(repr(tuple(task.classes)).encode())
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        kind, tensors = to_flat(getattr(task, name))
        h.update(f"{name}:{kind}".encode())
        for key, t in tensors.items():
            t = t.detach().to("cpu").contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _sample_train(y: np.ndarray, class_ids: list[int], names: Sequence[str], spec: TaskSpec
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices) into the dataset's train split, sorted."""
    train, val = [], []
    for c in class_ids:
        idx = np.flatnonzero(y == c)
        perm = np.random.default_rng([spec.seed, c, _SAMPLING_SALT]).permutation(idx)
        n = len(perm)
        if spec.val_per_class is not None:
            n_val = spec.val_per_class
            if n_val >= n:
                raise bad_value("val_per_class", n_val, f"fewer than the {n} training examples "
                                f"of class {names[c]!r}", "ask for fewer validation examples")
        else:
            frac = spec.effective_val_fraction
            n_val = int(np.floor(frac * n + 0.5))
            n_val = min(max(n_val, 1 if frac > 0 else 0), n - 1) if n >= 2 else 0
        rest = perm[n_val:]
        if spec.per_class is not None:
            if spec.per_class > len(rest):
                raise bad_value("per_class", spec.per_class, f"at most {len(rest)} for class "
                                f"{names[c]!r} ({n} training examples, {n_val} held out for "
                                "validation)", "ask for fewer shots or a smaller validation set")
            rest = rest[:spec.per_class]
        elif spec.fraction is not None:
            rest = rest[:max(1, int(np.floor(spec.fraction * len(rest) + 0.5)))]
        val.append(perm[:n_val])
        train.append(rest)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def images_to_tensor(x: np.ndarray, size: int | None = None, channels: int | None = None,
                     device: str | torch.device = "cpu", chunk: int = 8192) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C', H', W') float32 in [-1, 1] on ``device``.

    The uint8 data moves to the device first (4x less traffic); conversion, channel change
    and bilinear antialiased resizing run there, chunked to bound peak memory.
    """
    n, h, w, c = x.shape
    c_out = channels or c
    h_out, w_out = (size, size) if size else (h, w)
    out = torch.empty((n, c_out, h_out, w_out), dtype=torch.float32, device=device)
    luma = torch.tensor(_LUMA, device=device).view(1, 3, 1, 1)
    for s in range(0, n, chunk):
        xb = torch.from_numpy(np.ascontiguousarray(x[s:s + chunk])).to(device)
        xb = xb.permute(0, 3, 1, 2).float().div_(255)
        if c == 3 and c_out == 1:
            xb = (xb * luma).sum(1, keepdim=True)
        if (h_out, w_out) != (h, w):
            xb = F.interpolate(xb, size=(h_out, w_out), mode="bilinear", align_corners=False,
                               antialias=True)
        if c == 1 and c_out == 3:
            xb = xb.expand(-1, 3, -1, -1)
        out[s:s + len(xb)] = ((xb - 0.5) / 0.5).clamp_(-1, 1)
    return out


def make_task(spec: TaskSpec | str, data_dir: DataDir = None, device: str | torch.device = "cpu",
              dataset: ImageDataset | None = None, progress: bool = True) -> Task:
    """Build the task ``spec`` describes.

    Args:
        spec: a ``TaskSpec`` or its string, e.g. "mnist:classes=0-4:per_class=100:size=32".
        data_dir: where named datasets live (default ``$TRANSFERLAB_DATA``).
        device: where the tensors go.
        dataset: an already loaded ``ImageDataset`` (e.g. from ``from_arrays``) to use instead
            of loading ``spec.dataset``.
        progress: progress bar if images must be decoded.
    """
    spec = TaskSpec.parse(spec)
    ds = dataset if dataset is not None else load_dataset(spec.dataset, data_dir, progress)
    names = ds.classes
    chosen = resolve_classes(spec.classes, names)
    if spec.half is not None:
        a, b = split_halves([names[i] for i in chosen], spec.split, spec.split_seed)
        chosen = [chosen[i] for i in (a if spec.half == "A" else b)]
    train_idx, val_idx = _sample_train(ds.y_train, chosen, names, spec)
    test_idx = np.flatnonzero(np.isin(ds.y_test, chosen))
    relabel = np.full(len(names), -1, dtype=np.int64)
    relabel[chosen] = np.arange(len(chosen))

    def part(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return (images_to_tensor(x[idx], spec.size, spec.channels, device),
                torch.from_numpy(relabel[y[idx]]).to(device))

    x_tr, y_tr = part(ds.x_train, ds.y_train, train_idx)
    x_va, y_va = part(ds.x_train, ds.y_train, val_idx)
    x_te, y_te = part(ds.x_test, ds.y_test, test_idx)
    return Task(spec, tuple(names[i] for i in chosen), x_tr, y_tr, x_va, y_va, x_te, y_te,
                tuple(chosen), train_idx, val_idx, test_idx, ds.source)
