"""Decode cache: decoded uint8 arrays stored as ``.npy`` files, keyed by the sources' sha256.

Decoding 60,000 JPEGs takes seconds to minutes; loading four ``.npy`` files takes
milliseconds (they are memory-mapped). The key is the sha256 of each source file's content,
so a re-downloaded or edited file invalidates its entry. Hashing a 65 MB zip on every run would
cost more than it saves, so hashes are remembered by (path, size, mtime) in
``sha256-index.json``. A directory source is keyed by its listing (relative path, size, mtime
of every file) instead of content, which is cheap and catches added, removed and edited files.

Layout: ``CACHE/decoded/<kind>-<key>/{x_train,y_train,x_test,y_test}.npy`` plus ``meta.json``,
written last so an entry without it is incomplete and ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from transferlab._atomic import atomic_path, write_text_atomic
from transferlab.data.dataset import ImageDataset
from transferlab.data.paths import cache_dir

# Bump when the decoded arrays of any loader would change (new resize rule, new channel rule).
CACHE_VERSION = 1
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_CHUNK = 1 << 20

_memo: dict[str, tuple[int, int, str]] = {}


def _index_path() -> Path:
    return cache_dir() / "sha256-index.json"


def _read_index() -> dict:
    try:
        return json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's content, read in 1 MiB chunks; remembered by (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns)
    key = str(path)
    hit = _memo.get(key)
    if hit and hit[:2] == stamp:
        return hit[2]
    entry = _read_index().get(key)
    if entry and tuple(entry[:2]) == stamp:
        _memo[key] = (*stamp, entry[2])
        return entry[2]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    _memo[key] = (*stamp, digest)
    index = _read_index()  # re-read: another process may have added entries meanwhile
    index[key] = [*stamp, digest]
    try:
        write_text_atomic(_index_path(), json.dumps(index, indent=0, sort_keys=True))
    except OSError:
        pass  # a read-only cache only costs re-hashing next time
    return digest


def _listing_sha256(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n"
                     .encode())
    return h.hexdigest()


def source_key(paths: Sequence[str | os.PathLike]) -> str:
    """One hex key for a list of source files and/or directories.

    File names (not full paths) go into the key so that moving a dataset keeps its cache.
    """
    h = hashlib.sha256(f"transferlab-decode-v{CACHE_VERSION}\n".encode())
    for p in map(Path, paths):
        digest = _listing_sha256(p) if p.is_dir() else file_sha256(p)
        h.update(f"{p.name}\0{digest}\n".encode())
    return h.hexdigest()


def entry_dir(kind: str, key: str) -> Path:
    return cache_dir() / "decoded" / f"{kind}-{key[:24]}"


def load_cached(kind: str, key: str) -> ImageDataset | None:
    """The cached dataset for (kind, key), memory-mapped read-only, or None."""
    d = entry_dir(kind, key)
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("key") != key or meta.get("version") != CACHE_VERSION:
            return None
        arrays = {a: np.load(d / f"{a}.npy", mmap_mode="r") for a in ARRAYS}
        if any(list(arrays[a].shape) != meta["shapes"][a] for a in ARRAYS):
            return None
    except (OSError, ValueError, KeyError):
        return None  # absent, half-written or corrupt: decode again
    return ImageDataset(meta["name"], arrays["x_train"], arrays["y_train"], arrays["x_test"],
                        arrays["y_test"], tuple(meta["classes"]), meta["source"])


def store(kind: str, key: str, ds: ImageDataset) -> None:
    """Write ``ds`` under (kind, key); a failure only warns, since the cache is an optimisation."""
    d = entry_dir(kind, key)
    try:
        for a in ARRAYS:
            with atomic_path(d / f"{a}.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(getattr(ds, a)))
        meta = {"version": CACHE_VERSION, "key": key, "name": ds.name,
                "classes": list(ds.classes), "source": ds.source,
                "shapes": {a: list(getattr(ds, a).shape) for a in ARRAYS}}
        write_text_atomic(d / "meta.json", json.dumps(meta, indent=1))
    except OSError as exc:
        warnings.warn(f"could not write the decode cache at {d}: {exc}; set TRANSFERLAB_CACHE "
                      "to a writable folder to avoid decoding again", stacklevel=3)


def cached_dataset(kind: str, paths: Sequence[str | os.PathLike],
                   decode: Callable[[], ImageDataset]) -> ImageDataset:
    """Return the cached decode of ``paths``, or run ``decode()``, cache it and return it."""
    key = source_key(paths)
    hit = load_cached(kind, key)
    if hit is not None:
        return hit
    ds = decode()
    store(kind, key, ds)
    return load_cached(kind, key) or ds


def is_cached(kind: str, paths: Sequence[str | os.PathLike]) -> bool:
    """Whether a complete cache entry exists (hashes the sources, decodes nothing)."""
    return (entry_dir(kind, source_key(paths)) / "meta.json").exists()
