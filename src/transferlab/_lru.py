"""Least-recently-used bounds for the feature cache folder (no torch: the sweep CLI uses it).

A file's mtime is its last use: ``FeatureCache`` touches a file when it reads it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _cache_files(root: Path) -> list[tuple[float, int, Path]]:
    """(mtime, size, path) of the feature files under ``root``."""
    out = []
    for p in root.glob("*.safetensors"):
        try:  # another process may remove a file while we look
            st = p.stat()
        except FileNotFoundError:
            continue
        out.append((st.st_mtime, st.st_size, p))
    return out


def cache_size(root: str | os.PathLike) -> int:
    """Total bytes of the feature files under ``root``."""
    return sum(size for _, size, _ in _cache_files(Path(root)))


def prune_cache(root: str | os.PathLike, limit_bytes: int | None) -> int:
    """Remove the least recently used feature files until ``root`` holds <= ``limit_bytes``.

    Returns the number of bytes freed. ``None`` means no limit; 0 empties the folder. A
    trial whose file disappears under it simply recomputes the features.
    """
    if limit_bytes is None:
        return 0
    files = sorted(_cache_files(Path(root)))
    total = sum(size for _, size, _ in files)
    freed = 0
    for _, size, path in files:
        if total - freed <= limit_bytes:
            break
        path.unlink(missing_ok=True)
        Path(f"{path}.lock").unlink(missing_ok=True)  # the entry's lock file goes with it
        freed += size
    return freed
