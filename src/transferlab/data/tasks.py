"""Tasks: a ``TaskSpec`` applied to a ``Dataset`` gives tensors ready for training.

A task's inputs are images (N, C, H, W) float32 in [-1, 1], vectors (N, D) float32 (the
dataset's values exactly) or ``TokenInputs`` (N, L); ``Task.modality`` says which. Class
subsets, halves and example sampling work alike on all three:
  * classes: the subset (then the half) is relabelled 0..k-1 in the order given;
  * examples: data/sampling.py (k-shot tasks see exactly k labelled examples per class in
    total; ``episode`` picks which; the official test split is never subsampled).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from transferlab._memory import memory_limit
from transferlab.data.convert import images_to_tensor  # noqa: F401 - public here before
from transferlab.data.dataset import Dataset, ImageDataset
from transferlab.data.paths import DataDir
from transferlab.data.sampling import sample_train
from transferlab.data.sources import load_dataset
from transferlab.data.spec import TaskSpec
from transferlab.errors import UserError, bad_value
from transferlab.inputs import Batched, TokenInputs, batch_len

__all__ = ["Task", "TaskSpec", "make_task", "split_halves", "resolve_classes", "CLASS_GROUPS"]

# Named class groups, available on any dataset whose classes include all the members.
CLASS_GROUPS: dict[str, tuple[str, ...]] = {
    "animals": ("bird", "cat", "deer", "dog", "frog", "horse"),
    "vehicles": ("airplane", "automobile", "ship", "truck"),
}
# Predefined dissimilar halves (A, B), as group names; Yosinski et al.'s man-made/natural idea.
DISSIMILAR_HALVES = ("animals", "vehicles")


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
    """Tensors of one task; y_*: (N,) int64 in [0, k).

    x_*: images (N, C, H, W) float32 in [-1, 1]; vectors (N, D) float32; or ``TokenInputs``
    (N, L) ids + mask. ``class_ids`` are the dataset's class indices in task-label order;
    ``*_index`` are indices into the dataset's train (train, val) and test splits.
    """

    spec: TaskSpec
    classes: tuple[str, ...]
    x_train: Batched
    y_train: torch.Tensor
    x_val: Batched
    y_val: torch.Tensor
    x_test: Batched
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
    def modality(self) -> str:
        """"image" (x (N, C, H, W)), "vector" (x (N, D)) or "tokens" (``TokenInputs``)."""
        if isinstance(self.x_train, TokenInputs):
            return "tokens"
        kind = {4: "image", 2: "vector"}.get(self.x_train.dim())
        if kind is None:
            raise UserError(f"task {str(self.spec)!r}: x_train has shape "
                            f"{tuple(self.x_train.shape)}; allowed are images (N, C, H, W), "
                            "vectors (N, D) or TokenInputs")
        return kind

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) images, (D,) vectors, (L,) tokens."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    def _image_only(self, what: str) -> None:
        if self.modality != "image":
            raise UserError(f"task {str(self.spec)!r} holds {self.modality} inputs of shape "
                            f"{self.input_shape}, so it has no {what}; use task.input_shape "
                            "(or task.model_kwargs to build a model)")

    @property
    def in_channels(self) -> int:
        """C of image tasks (``UserError`` for other modalities)."""
        self._image_only("in_channels")
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int | tuple[int, int]:
        """H (= W) for square images, else (H, W) (``UserError`` for other modalities)."""
        self._image_only("image_size")
        h, w = int(self.x_train.shape[2]), int(self.x_train.shape[3])
        return h if h == w else (h, w)

    @property
    def model_kwargs(self) -> dict:
        """Input keywords of ``build_model`` for this task's inputs.

        Images: in_channels and image_size. Vectors (D,): in_channels=D, image_size=1 -- a
        1x1 "image" with D channels, which ``mlp`` flattens to exactly D inputs (conv
        architectures need images). Tokens: ``UserError`` (wrap a text encoder instead).
        """
        if self.modality == "image":
            return {"in_channels": self.in_channels, "image_size": self.image_size}
        if self.modality == "vector":
            return {"in_channels": self.input_shape[0], "image_size": 1}
        raise UserError(f"task {str(self.spec)!r} holds token sequences: the built-in "
                        "architectures take images or vectors; wrap a text encoder with "
                        "transferlab.models.wrap and pass it as the source model")

    @property
    def n_train(self) -> int:
        return batch_len(self.x_train)

    @property
    def n_val(self) -> int:
        return batch_len(self.x_val)

    @property
    def n_test(self) -> int:
        return batch_len(self.x_test)

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
        """A copy with every tensor (``TokenInputs`` included) on ``device``."""
        moved = {k: getattr(self, k).to(device) for k in
                 ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}
        out = dataclasses.replace(self, **moved)
        if "_fingerprint" in self.__dict__:  # same data: no re-hashing on the device
            object.__setattr__(out, "_fingerprint", self.__dict__["_fingerprint"])
        return out

    def __repr__(self) -> str:
        return (f"Task({str(self.spec)!r}, {self.modality}, classes={self.num_classes}, "
                f"train={self.n_train}, val={self.n_val}, test={self.n_test}, "
                f"shape={self.input_shape}, device={self.device})")


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
            # hash the tensor's own buffer: no bytes copy (half the time of .tobytes())
            h.update(t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b"")
    return h.hexdigest()


def _check_memory(spec: TaskSpec, ds: Dataset, n: int) -> None:
    """Refuse, before allocating, a task whose tensors could not fit in memory (size=100000)."""
    need = spec.source_keys.tensor_bytes(ds, n)
    limit = memory_limit()
    if need > limit:
        given = spec.source_keys.given()
        key = next(iter(given), "per_class")
        raise bad_value(key, given.get(key, "(all examples)"),
                        f"a task that fits in memory: {n:,} examples would take "
                        f"{need / 2**30:,.1f} GiB as float32, over the {limit / 2**30:.1f} GiB "
                        "allowed (half this machine's memory)",
                        "use a smaller size or fewer examples (per_class / fraction)")


def make_task(spec: TaskSpec | str, data_dir: DataDir = None, device: str | torch.device = "cpu",
              dataset: Dataset | None = None, progress: bool = True) -> Task:
    """Build the task ``spec`` describes.

    Args:
        spec: a ``TaskSpec`` or its string, e.g. "mnist:classes=0-4:per_class=100:size=32".
        data_dir: where named datasets live (default ``$TRANSFERLAB_DATA``).
        device: where the tensors go.
        dataset: an already loaded ``Dataset`` (e.g. from ``from_arrays`` / ``from_tokens``)
            to use instead of loading ``spec.dataset``.
        progress: progress bar if images must be decoded.
    """
    spec = TaskSpec.parse(spec)
    ds = dataset if dataset is not None else load_dataset(spec.dataset, data_dir, progress,
                                                          keys=spec.source_keys)
    # A dataset loaded here (by name) is kept by load_dataset's LRU and never changes, so
    # the task built from it can be kept too; one passed in may be edited by its owner.
    # Each entry holds its dataset, so no other dataset can take its id while it is kept.
    key = (id(ds), str(spec), str(torch.device(device))) if dataset is None else None
    hit = _TASKS.get(key) if key is not None else None
    if hit is not None:
        _TASKS.move_to_end(key)
        return _copy_task(hit[1])
    task = _build_task(spec, ds, device)
    if key is not None and _task_bytes(task) <= TASK_MEMO_BYTES:
        _ = task.fingerprint  # hashed once here; every copy carries it (trials check it)
        _TASKS[key] = (ds, task)
        while len(_TASKS) > TASK_MEMO_SIZE:
            _TASKS.popitem(last=False)
        return _copy_task(task)
    return task


# Built tasks kept in this process: a sweep runs many trials on one task, and building it
# again converts every image again (~0.15 s a trial on CIFAR-10 at 24 px, against ~10 ms for
# a copy). Callers get copies, so a trial that writes into its task's tensors cannot change
# another trial's. Only image and vector tasks, and only small ones, are kept.
_TASKS: OrderedDict = OrderedDict()
TASK_MEMO_SIZE = 4
TASK_MEMO_BYTES = 256 * 2**20


def clear_task_memo() -> None:
    """Forget the built tasks kept in this process."""
    _TASKS.clear()


def _task_bytes(task: Task) -> float:
    """Bytes of the task's tensors; inf for token tasks (not kept: their tokens are cached
    on disk, and TokenInputs has no cheap copy here)."""
    xs = (task.x_train, task.x_val, task.x_test)
    if not all(isinstance(x, torch.Tensor) for x in xs):
        return float("inf")
    ys = (task.y_train, task.y_val, task.y_test)
    return float(sum(t.numel() * t.element_size() for t in (*xs, *ys)))


def _copy_task(task: Task) -> Task:
    """The task with copies of its tensors (the fingerprint carried over: the same data)."""
    out = dataclasses.replace(task, **{k: getattr(task, k).clone() for k in (
        "x_train", "y_train", "x_val", "y_val", "x_test", "y_test")})
    if "_fingerprint" in task.__dict__:
        object.__setattr__(out, "_fingerprint", task.__dict__["_fingerprint"])
    return out


def _build_task(spec: TaskSpec, ds: Dataset, device: str | torch.device) -> Task:
    """``make_task``'s work once the dataset is loaded."""
    spec.source_keys.check(ds)
    names = ds.classes
    chosen = resolve_classes(spec.classes, names)
    if spec.half is not None:
        a, b = split_halves([names[i] for i in chosen], spec.split, spec.split_seed)
        chosen = [chosen[i] for i in (a if spec.half == "A" else b)]
    if len(chosen) < 2:
        raise bad_value("classes", [names[i] for i in chosen], "at least 2 classes (a "
                        f"classifier needs two; {ds.name!r} has {len(names)})",
                        "pick more classes, or a larger half")
    train_idx, val_idx = sample_train(ds.y_train, chosen, names, spec)
    test_idx = np.flatnonzero(np.isin(ds.y_test, chosen))
    _check_memory(spec, ds, len(train_idx) + len(val_idx) + len(test_idx))
    relabel = np.full(len(names), -1, dtype=np.int64)
    relabel[chosen] = np.arange(len(chosen))

    def part(x, y: np.ndarray, idx: np.ndarray) -> tuple[Batched, torch.Tensor]:
        return (spec.source_keys.convert(x[idx], ds.modality, device),
                torch.from_numpy(relabel[y[idx]]).to(device))

    x_tr, y_tr = part(ds.x_train, ds.y_train, train_idx)
    x_va, y_va = part(ds.x_train, ds.y_train, val_idx)
    x_te, y_te = part(ds.x_test, ds.y_test, test_idx)
    return Task(spec, tuple(names[i] for i in chosen), x_tr, y_tr, x_va, y_va, x_te, y_te,
                tuple(chosen), train_idx, val_idx, test_idx, ds.source)
