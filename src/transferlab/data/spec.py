"""``TaskSpec``: which dataset, classes and examples make a task, as a short string.

``TaskSpec.parse("mnist:classes=0-4:per_class=100:size=32")`` and ``str(spec)`` round-trip;
the string omits defaults, so it doubles as a readable key in sweeps and result tables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from transferlab.errors import UserError, bad_value

_FORBIDDEN = set(",:=")


def _class_token(tok) -> list[int | str]:
    """One class token: an int, "a-b" (inclusive range of ints), or a name/group name."""
    if isinstance(tok, bool):
        raise bad_value("classes", tok, "class indices, ranges like 0-4, or class names")
    if isinstance(tok, int):
        return [tok]
    tok = str(tok).strip()
    if tok.lstrip("-").isdigit():
        return [int(tok)]
    lo, sep, hi = tok.partition("-")
    if sep and lo.strip().isdigit() and hi.strip().isdigit():
        lo_i, hi_i = int(lo), int(hi)
        if hi_i < lo_i:
            raise bad_value("classes", tok, "a range low-high with low <= high", "write e.g. 0-4")
        return list(range(lo_i, hi_i + 1))
    if not tok or _FORBIDDEN & set(tok):
        raise bad_value("classes", tok, "non-empty names without ',', ':' or '='",
                        "pass class indices instead")
    return [tok]


def normalize_classes(value) -> tuple[int | str, ...] | None:
    """classes given as "0-4,7", 3, range(5), ["cat", "dog"] -> a tuple of ints and names."""
    if value is None:
        return None
    if isinstance(value, str):
        tokens = value.split(",")
    elif isinstance(value, int):
        tokens = [value]
    else:
        tokens = list(value)
    out: list[int | str] = []
    for tok in tokens:
        out += _class_token(tok)
    if not out:
        raise bad_value("classes", value, "at least one class", "omit classes to use all")
    negative = [c for c in out if isinstance(c, int) and c < 0]
    if negative:
        raise bad_value("classes", negative[0], "class indices >= 0")
    dupes = sorted({str(c) for c in out if out.count(c) > 1})
    if dupes:
        raise bad_value("classes", value, "each class once", f"remove duplicates {dupes}")
    return tuple(out)


def format_classes(classes: tuple[int | str, ...]) -> str:
    """Canonical text: runs of three or more consecutive ints become "a-b"."""
    parts: list[str] = []
    i = 0
    while i < len(classes):
        j = i
        if isinstance(classes[i], int):
            while (j + 1 < len(classes) and isinstance(classes[j + 1], int)
                   and classes[j + 1] == classes[j] + 1):
                j += 1
        if j - i >= 2:
            parts.append(f"{classes[i]}-{classes[j]}")
        else:
            parts += [str(c) for c in classes[i:j + 1]]
        i = j + 1
    return ",".join(parts)


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True)
class TaskSpec:
    """What a task is made of. Build with keywords or ``TaskSpec.parse(text)``."""

    dataset: str = field(metadata=_help(
        "dataset name (digits, mnist, kmnist, cifar10) or an image folder / .zip / .npz path"))
    classes: tuple[int | str, ...] | None = field(default=None, metadata=_help(
        "subset of classes, relabelled 0..k-1 in the order given: indices, ranges like 0-4, "
        "class names, or for CIFAR-10 the groups animals / vehicles; default all"))
    half: str | None = field(default=None, metadata=_help(
        "A or B: keep one half of the classes (after `classes`), as chosen by `split`"))
    split: str = field(default="random", metadata=_help(
        "how classes are halved: random (with split_seed) or dissimilar (predefined: CIFAR-10 "
        "A = 6 animals, B = 4 vehicles)"))
    split_seed: int = field(default=0, metadata=_help("seed of the random class split"))
    per_class: int | None = field(default=None, metadata=_help(
        "k-shot: keep k training examples per class (stratified); nested in k for one seed"))
    fraction: float | None = field(default=None, metadata=_help(
        "keep this fraction (0, 1] of the training examples of each class"))
    val_fraction: float | None = field(default=None, metadata=_help(
        "fraction of each class's training examples held out for validation before any "
        "subsampling; default 0.1 (0 = no validation set)"))
    val_per_class: int | None = field(default=None, metadata=_help(
        "validation examples per class instead of val_fraction (useful for few-shot)"))
    size: int | None = field(default=None, metadata=_help(
        "resize images to size x size (bilinear, antialiased); default native (digits: 8)"))
    channels: int | None = field(default=None, metadata=_help(
        "1 or 3: grey -> RGB repeats the channel, RGB -> grey uses luminance; default native"))
    seed: int = field(default=0, metadata=_help(
        "seed of example sampling (validation split, per_class, fraction)"))

    DEFAULT_VAL_FRACTION = 0.1

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        if not isinstance(self.dataset, str) or not self.dataset.strip() or ":" in self.dataset:
            raise bad_value("dataset", self.dataset, "a dataset name or path without ':'")
        set_("classes", normalize_classes(self.classes))
        if self.half is not None:
            if str(self.half).upper() not in ("A", "B"):
                raise bad_value("half", self.half, "A or B", "or omit half to keep all classes")
            set_("half", str(self.half).upper())
        if self.split not in ("random", "dissimilar"):
            raise bad_value("split", self.split, "random or dissimilar")
        if self.half is None and (self.split != "random" or self.split_seed != 0):
            raise UserError(f"split={self.split!r} / split_seed={self.split_seed!r} only apply "
                            "with half=A or half=B; add half or remove them")
        for name, lo in (("split_seed", 0), ("seed", 0), ("per_class", 1), ("val_per_class", 0),
                         ("size", 1)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise bad_value(name, v, f"an integer >= {lo}")
        if self.channels is not None and self.channels not in (1, 3):
            raise bad_value("channels", self.channels, "1 or 3", "or omit it to keep the native")
        if self.fraction is not None and (isinstance(self.fraction, bool) or not (
                isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1)):
            raise bad_value("fraction", self.fraction, "a number in (0, 1]")
        if self.val_fraction is not None and (isinstance(self.val_fraction, bool) or not (
                isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1)):
            raise bad_value("val_fraction", self.val_fraction, "a number in [0, 1)")
        if self.per_class is not None and self.fraction is not None:
            raise UserError("per_class and fraction both given; pass only one of them")
        if self.val_per_class is not None and self.val_fraction is not None:
            raise UserError("val_fraction and val_per_class both given; pass only one of them")
        for name in ("fraction", "val_fraction"):
            if getattr(self, name) is not None:
                set_(name, float(getattr(self, name)))

    @property
    def effective_val_fraction(self) -> float:
        """The validation fraction in force (0 when ``val_per_class`` is used)."""
        if self.val_per_class is not None:
            return 0.0
        return self.DEFAULT_VAL_FRACTION if self.val_fraction is None else self.val_fraction

    @classmethod
    def keys(cls) -> list[str]:
        """The ``key=value`` keys that ``parse`` accepts."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "dataset"]

    @classmethod
    def parse(cls, text: str | TaskSpec) -> TaskSpec:
        """Parse ``DATASET[:key=value]...``; values are ints, floats or comma lists."""
        if isinstance(text, TaskSpec):
            return text
        parts = str(text).strip().split(":")
        dataset, kwargs = parts[0].strip(), {}
        if not dataset or "=" in dataset:
            raise bad_value("task", text, "DATASET[:key=value]...", "start with a dataset name, "
                            "e.g. mnist:classes=0-4:per_class=100")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in types or key == "dataset":
                raise bad_value("task", text, f"DATASET:key=value with key one of "
                                f"{', '.join(cls.keys())}", f"fix {part!r}")
            if key in kwargs:
                raise bad_value("task", text, "each key once", f"{key} is given twice")
            if "int" in types[key] and key != "classes":
                try:
                    kwargs[key] = int(value)
                except ValueError:
                    raise bad_value(key, value, "an integer") from None
            elif "float" in types[key]:
                try:
                    kwargs[key] = float(value)
                except ValueError:
                    raise bad_value(key, value, "a number") from None
            else:
                kwargs[key] = value
        return cls(dataset, **kwargs)

    def __str__(self) -> str:
        out = self.dataset
        for f in dataclasses.fields(self)[1:]:
            v = getattr(self, f.name)
            if v == f.default:
                continue
            out += f":{f.name}={format_classes(v) if f.name == 'classes' else v}"
        return out
