"""Registered dataset sources, each with its own task keys.

A task string has generic keys, parsed by ``TaskSpec`` (classes, half, per_class, ...), and
keys that belong to the dataset's *source* (``size``/``channels`` of image sources; a synthetic
source's ``latent_dim``). A source declares its keys as a frozen dataclass derived from
``SourceKeys`` whose fields carry ``metadata={"help": ...}`` and whose ``__post_init__``
validates them, and registers itself with ``register_source``::

    @dataclass(frozen=True)
    class BlobKeys(SourceKeys):
        dim: int = field(default=4, metadata={"help": "feature dimension"})

    register_source("blobs", load=lambda keys, paths, progress: make_blobs(keys.dim),
                    keys=BlobKeys, description="Gaussian blobs", modality="vector")

after which ``blobs:dim=8:per_class=5`` parses, and ``blobs:size=8`` is an error listing the
allowed keys. Names that are not registered (paths, in-memory datasets passed to
``make_task(dataset=...)``) get ``ImageKeys``; on a dataset that is not images those keys are
an error naming the key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab.errors import bad_value

__all__ = ["ImageKeys", "Source", "SourceKeys", "SOURCES", "get_source", "keys_class",
           "parse_value", "register_source", "unregister_source"]

MODALITIES = ("image", "vector", "tokens")
_FORBIDDEN = set(",:=")


@dataclass(frozen=True)
class SourceKeys:
    """Base of a source's own task keys (no keys of its own).

    Subclasses are frozen dataclasses; every field has a default and help text. Hooks:
    ``check`` (is this key applicable to the loaded dataset?), ``convert`` (selected examples
    -> tensors), ``tensor_bytes`` (what ``convert`` will allocate, checked against memory
    before it runs) and ``load_key`` (the part of the keys that changes what ``load``
    returns).
    """

    def check(self, ds) -> None:
        """Raise ``UserError`` if a key given does not apply to the loaded ``ds``."""

    def convert(self, x, modality: str, device):
        """Examples as stored in a ``Dataset`` -> the task's inputs on ``device``.

        images (n, H, W, C) uint8 -> (n, C, H, W) float32 in [-1, 1]; vectors (n, D) float32
        -> the same values (no copy when already on ``device``); tokens: ``TokenInputs``
        moved to ``device``.
        """
        from transferlab.data.convert import to_inputs

        return to_inputs(x, modality, device)

    def tensor_bytes(self, ds, n: int) -> int:
        """Bytes ``convert`` allocates for ``n`` examples of ``ds``; 0 when it does not grow
        them (vectors and tokens are already in memory at their final size)."""
        return 0

    def load_key(self) -> str:
        """What of these keys changes the loaded dataset (part of the in-memory cache key)."""
        return repr(self)

    def given(self) -> dict[str, Any]:
        """The keys that differ from their defaults, in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}


@dataclass(frozen=True)
class ImageKeys(SourceKeys):
    """Keys of image sources: resizing and channel conversion, applied when tensors are made."""

    size: int | None = field(default=None, metadata={"help": (
        "resize images to size x size (bilinear, antialiased); default native (digits: 8)")})
    channels: int | None = field(default=None, metadata={"help": (
        "1 or 3: grey -> RGB repeats the channel, RGB -> grey uses luminance; default native")})

    def __post_init__(self) -> None:
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(
                self.size, int) or self.size < 1):
            raise bad_value("size", self.size, "an integer >= 1")
        if self.channels is not None and self.channels not in (1, 3):
            raise bad_value("channels", self.channels, "1 or 3", "or omit it to keep the native")

    def check(self, ds) -> None:
        if ds.modality == "image":
            return
        for key, value in self.given().items():
            raise bad_value(key, value, f"only on image tasks; dataset {ds.name!r} holds "
                            f"{ds.modality} inputs", f"remove {key} from the task")

    def tensor_bytes(self, ds, n: int) -> int:
        """Bytes of ``n`` converted images of ``ds`` (float32 (C, H, W) at this size)."""
        if ds.modality != "image":
            return 0
        h, w, c = ds.input_shape
        side = (self.size, self.size) if self.size else (h, w)
        return 4 * n * (self.channels or c) * side[0] * side[1]

    def convert(self, x, modality: str, device):
        if modality != "image":
            return super().convert(x, modality, device)
        from transferlab.data.convert import images_to_tensor

        return images_to_tensor(x, self.size, self.channels, device)

    def load_key(self) -> str:
        return ""  # resizing happens after loading: one decoded dataset serves every size


@dataclass(frozen=True)
class Source:
    """A registered dataset: how to load it, its files, its task keys.

    ``load(keys, paths, progress) -> Dataset``; ``paths`` are the files of the first complete
    ``filesets`` alternative found in the data directories ([] when there are no filesets).
    ``describe(paths) -> dict`` gives sizes without decoding (for ``transferlab data``).
    """

    name: str
    load: Callable[[SourceKeys, list[Path], bool], Any]
    keys: type[SourceKeys] = SourceKeys
    description: str = ""
    filesets: tuple[tuple[str, ...], ...] = ()
    describe: Callable[[list[Path]], dict] | None = None
    modality: str = "image"


SOURCES: dict[str, Source] = {}


def register_source(name: str, load: Callable[[SourceKeys, list[Path], bool], Any], *,
                    keys: type[SourceKeys] = SourceKeys, description: str = "",
                    filesets: tuple[tuple[str, ...], ...] = (),
                    describe: Callable[[list[Path]], dict] | None = None,
                    modality: str = "image", replace: bool = False) -> Source:
    """Register a dataset source under ``name`` (see the module docstring); returns it."""
    from transferlab.data.spec import GENERIC_KEYS

    if (not isinstance(name, str) or not name.strip() or _FORBIDDEN & set(name)
            or name != name.strip()):
        raise bad_value("name", name, "a non-empty name without ',', ':' or '='")
    if name in SOURCES and not replace:
        raise bad_value("name", name, f"a name not yet registered ({', '.join(SOURCES)})",
                        "pick another name or pass replace=True")
    if modality not in MODALITIES:
        raise bad_value("modality", modality, " or ".join(MODALITIES))
    if not (isinstance(keys, type) and issubclass(keys, SourceKeys)
            and dataclasses.is_dataclass(keys) and keys.__dataclass_params__.frozen):
        raise bad_value("keys", keys, "a frozen dataclass derived from SourceKeys")
    for f in dataclasses.fields(keys):
        if f.name in GENERIC_KEYS or f.name == "dataset":
            raise bad_value("keys", f.name, "names other than the generic task keys "
                            f"{', '.join(GENERIC_KEYS)}", "rename the field")
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise bad_value("keys", f.name, "fields with defaults (a task may omit any key)")
        if not f.metadata.get("help"):
            raise bad_value("keys", f.name, "fields with metadata={'help': ...}")
    src = Source(name, load, keys, description, tuple(tuple(fs) for fs in filesets), describe,
                 modality)
    SOURCES[name] = src
    return src


def unregister_source(name: str) -> None:
    """Remove a registered source (tests register temporary ones)."""
    if name not in SOURCES:
        raise bad_value("name", name, f"a registered source ({', '.join(SOURCES)})")
    del SOURCES[name]


def get_source(name: str) -> Source | None:
    """The registered source called ``name``, or None (a path or an in-memory dataset)."""
    return SOURCES.get(name)


def keys_class(dataset: str) -> type[SourceKeys]:
    """The keys dataclass that parses ``dataset``'s own task keys (``ImageKeys`` if unknown)."""
    src = SOURCES.get(dataset)
    return src.keys if src is not None else ImageKeys


def key_names(cls: type[SourceKeys]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def parse_value(key: str, value: str, annotation) -> Any:
    """A task-string value -> int, float or bool by the field's annotation, else the text."""
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__",
                                                                   str(annotation))
    if re.search(r"\bint\b", kind):
        try:
            return int(value)
        except ValueError:
            raise bad_value(key, value, "an integer") from None
    if re.search(r"\bfloat\b", kind):
        try:
            return float(value)
        except ValueError:
            raise bad_value(key, value, "a number") from None
    if re.search(r"\bbool\b", kind):
        low = value.lower()
        if low not in ("true", "false", "1", "0"):
            raise bad_value(key, value, "true or false")
        return low in ("true", "1")
    return value

