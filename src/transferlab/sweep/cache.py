"""The cache folder next to a sweep database: ``<db>.cache/``.

``sources/<key>/source.{safetensors,json}``  pretrained sources, keyed by their resolved
                                             pretraining config (a resumed sweep reuses them)
``features/<key>.safetensors``               frozen-prefix features shared by trials
                                             (written by ``transferlab.features``)

Features can be recomputed, so they are bounded (least recently used files go first;
the feature cache touches a file when it reads it). Sources are never evicted: re-training
one would change its content hash and so every trial key that depends on it.
"""

from __future__ import annotations

import os
from pathlib import Path

from transferlab.sweep.store import trial_key


def cache_root(db_path: str | os.PathLike) -> Path:
    db = Path(db_path)
    return db.with_name(db.name + ".cache")


def features_dir(db_path: str | os.PathLike) -> Path:
    return cache_root(db_path) / "features"


def source_path(db_path: str | os.PathLike, pretrain_cfg: dict) -> Path:
    """Checkpoint path (without extension) of a pretrained source with this config.

    ``data_dir`` is where the data lives, not what it is, so it is not part of the key.
    """
    ident = {k: v for k, v in pretrain_cfg.items() if k != "data_dir"}
    return cache_root(db_path) / "sources" / trial_key(ident)[:32] / "source"


def source_ready(path: Path) -> bool:
    """A source is complete once its sidecar exists: it is written after the weights."""
    return path.with_name(path.name + ".json").is_file() and \
        path.with_name(path.name + ".safetensors").is_file()


def _files(root: Path) -> list[tuple[float, int, Path]]:
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
    return sum(size for _, size, _ in _files(Path(root)))


def prune_features(root: str | os.PathLike, limit_bytes: int | None) -> int:
    """Remove the least recently used feature files until ``root`` holds <= ``limit_bytes``.

    Returns the number of bytes freed. ``None`` means no limit; 0 empties the folder. A
    trial whose file disappears under it simply recomputes the features.
    """
    if limit_bytes is None:
        return 0
    files = sorted(_files(Path(root)))
    total = sum(size for _, size, _ in files)
    freed = 0
    for _, size, path in files:
        if total - freed <= limit_bytes:
            break
        path.unlink(missing_ok=True)
        Path(f"{path}.lock").unlink(missing_ok=True)  # the entry's lock file goes with it
        freed += size
    return freed
