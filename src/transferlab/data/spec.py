"""``TaskSpec``: which dataset, classes and examples make a task, as a short string.

``TaskSpec.parse("mnist:classes=0-4:per_class=100:size=32")`` and ``str(spec)`` round-trip;
the string omits defaults, so it doubles as a readable key in sweeps and result tables.

Generic keys (classes, half, split, split_seed, per_class, fraction, val_fraction,
val_per_class, seed, episode) are parsed here; every other key belongs to the dataset's source
(data/registry.py: ``size``/``channels`` for image sources) and is parsed and validated by its
keys dataclass, held in ``spec.source_keys`` (and readable as ``spec.size``). Canonical order:
the generic keys up to val_per_class, then the source's keys, then seed and episode.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from transferlab.data.registry import SOURCES, SourceKeys, key_names, keys_class, parse_value
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


# Generic keys in canonical order; the source's keys go between the two groups.
_BEFORE = ("classes", "half", "split", "split_seed", "per_class", "fraction", "val_fraction",
           "val_per_class")
_AFTER = ("seed", "episode")
GENERIC_KEYS = _BEFORE + _AFTER
# With per_class=k and no explicit validation key, floor(k / 4) of the k go to validation
# when k >= this; below it the validation split is empty (see data/sampling.py).
MIN_SHOTS_FOR_VAL = 4


@dataclass(frozen=True, init=False)
class TaskSpec:
    """What a task is made of. Build with keywords or ``TaskSpec.parse(text)``.

    ``TaskSpec("mnist", per_class=5, size=16)``: keywords that are not generic keys go to the
    dataset's source keys (``source_keys``); an unknown one is an error listing the allowed
    keys. Sampling rules: see data/sampling.py and docs/ARCHITECTURE.md ("Data").
    """

    dataset: str = field(metadata=_help(
        "dataset name (digits, mnist, kmnist, cifar10, or any registered source) or an image "
        "folder / .zip / .npz path"))
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
        "k-shot: k labelled examples per class in total (train + validation): floor(k/4) of "
        "them validate when k >= 4, none below (or as val_fraction says); with val_per_class, "
        "k train examples plus val_per_class validation examples"))
    fraction: float | None = field(default=None, metadata=_help(
        "keep this fraction (0, 1] of each class's training examples; the validation split "
        "is carved inside it (val_fraction of it) unless val_per_class is given"))
    val_fraction: float | None = field(default=None, metadata=_help(
        "fraction of the labelled examples held out for validation; default 0.1 (0 = no "
        "validation set); with per_class it splits the k examples"))
    val_per_class: int | None = field(default=None, metadata=_help(
        "validation examples per class, drawn besides the per_class / fraction training "
        "examples (the only way to validate on more than the k labelled examples)"))
    seed: int = field(default=0, metadata=_help(
        "seed of example sampling (validation split, per_class, fraction)"))
    episode: int = field(default=0, metadata=_help(
        "which support set (per_class / fraction sample) is drawn: same episode, same "
        "examples; needs per_class or fraction"))
    source_keys: SourceKeys = field(default=None, metadata=_help(  # type: ignore[assignment]
        "the dataset source's own keys (e.g. size, channels of image sources)"))

    DEFAULT_VAL_FRACTION = 0.1

    def __init__(self, dataset: str, *, source_keys: SourceKeys | None = None,
                 **keys) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        if not isinstance(dataset, str) or not dataset.strip() or ":" in dataset:
            raise bad_value("dataset", dataset, "a dataset name or path without ':'")
        set_("dataset", dataset)
        for name in GENERIC_KEYS:
            set_(name, keys.pop(name, _DEFAULTS[name]))
        cls = keys_class(dataset)
        unknown = [k for k in keys if k not in key_names(cls)]
        if unknown:
            raise bad_value(unknown[0], keys[unknown[0]], allowed_keys_text(dataset),
                            "remove it or fix its name")
        if source_keys is not None:
            if type(source_keys) is not cls:
                raise bad_value("source_keys", source_keys, f"a {cls.__name__} for {dataset!r}")
            keys = {**source_keys.given(), **keys}
        set_("source_keys", cls(**keys))
        self._validate()

    def __getattr__(self, name: str):
        # Source keys read like fields (spec.size), for code written before the registry.
        keys = self.__dict__.get("source_keys")
        if not name.startswith("_") and keys is not None and name in key_names(type(keys)):
            return getattr(keys, name)
        raise AttributeError(f"TaskSpec has no attribute {name!r}")

    def _validate(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
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
                         ("episode", 0)):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise bad_value(name, v, f"an integer >= {lo}")
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
        if self.episode and self.per_class is None and self.fraction is None:
            raise bad_value("episode", self.episode, "only with per_class or fraction (it "
                            "picks which support set is drawn)", "add per_class=k or remove "
                            "episode")
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
    def keys(cls, dataset: str | None = None) -> list[str]:
        """The ``key=value`` keys that ``parse`` accepts for ``dataset`` (canonical order).

        Without a dataset: the generic keys plus every registered source's keys.
        """
        if dataset is not None:
            own = key_names(keys_class(dataset))
        else:
            own = list(dict.fromkeys(k for kc in [keys_class(""), *(s.keys for s in
                                                                     SOURCES.values())]
                                     for k in key_names(kc)))
        return [*_BEFORE, *own, *_AFTER]

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
        types = {f.name: f.type for f in dataclasses.fields(cls) if f.name in GENERIC_KEYS}
        types.update({f.name: f.type for f in dataclasses.fields(keys_class(dataset))})
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in types:
                raise bad_value("task", text, "DATASET:key=value with "
                                + allowed_keys_text(dataset), f"fix {part!r}")
            if key in kwargs:
                raise bad_value("task", text, "each key once", f"{key} is given twice")
            kwargs[key] = value if key == "classes" else parse_value(key, value, types[key])
        return cls(dataset, **kwargs)

    def __str__(self) -> str:
        own = self.source_keys.given()
        out = self.dataset
        for name in _BEFORE:
            v = getattr(self, name)
            if v != _DEFAULTS[name]:
                out += f":{name}={format_classes(v) if name == 'classes' else v}"
        out += "".join(f":{k}={v}" for k, v in own.items())
        out += "".join(f":{k}={getattr(self, k)}" for k in _AFTER
                       if getattr(self, k) != _DEFAULTS[k])
        return out


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TaskSpec) if f.name in GENERIC_KEYS}


def allowed_keys_text(dataset: str) -> str:
    """"key one of <generic> (any dataset), <own> (DATASET's source)": for error messages."""
    own = key_names(keys_class(dataset))
    where = (f"source {dataset!r}" if dataset in SOURCES
             else "image folders, .npz and in-memory datasets")
    tail = f"; {', '.join(own)} ({where})" if own else f"; source {dataset!r} has no own keys"
    return f"key one of {', '.join(GENERIC_KEYS)} (any dataset){tail}"
