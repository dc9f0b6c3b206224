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

from transferlab._lru import cache_size, prune_cache as prune_features  # noqa: F401
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
