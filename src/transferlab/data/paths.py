"""Where datasets and the decode cache live.

Data directories come from the caller (CLI ``--data-dir``) or ``TRANSFERLAB_DATA``; the package
never assumes a fixed location, because a user's machine has its own layout. Inside a data
directory a file ``F`` of dataset ``NAME`` is looked up as ``DIR/NAME/F`` and then ``DIR/F``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

DATA_ENV = "TRANSFERLAB_DATA"
CACHE_ENV = "TRANSFERLAB_CACHE"

DataDir = str | os.PathLike | Sequence[str | os.PathLike] | None


def data_dirs(data_dir: DataDir = None) -> list[Path]:
    """The data directories to search, in order.

    ``data_dir`` (a path, a list of paths, or a string of paths joined by ``os.pathsep``) wins;
    otherwise ``$TRANSFERLAB_DATA`` (same syntax). Empty entries are dropped.
    """
    if data_dir is None:
        raw: list = [os.environ.get(DATA_ENV, "")]
    elif isinstance(data_dir, (str, os.PathLike)):
        raw = [data_dir]
    else:
        raw = list(data_dir)
    out: list[Path] = []
    for item in raw:
        for part in str(os.fspath(item)).split(os.pathsep):
            if part.strip():
                out.append(Path(part.strip()).expanduser())
    return out


def cache_dir() -> Path:
    """``$TRANSFERLAB_CACHE`` or ``~/.cache/transferlab``; ``UserError`` if the variable
    names a file (or a path inside one): a misconfigured cache is one line, not a warning
    per dataset and a silent decode every run."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if not env:
        return Path.home() / ".cache" / "transferlab"
    path = Path(env).expanduser()
    anc = path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if anc.exists() and not anc.is_dir():
        from transferlab.errors import UserError

        raise UserError(f"{CACHE_ENV}={env!r} is invalid: {anc} is a file; allowed is a "
                        f"folder (new or existing); set {CACHE_ENV} to a folder or unset it")
    return path


def candidate_dirs(name: str, dirs: Sequence[Path]) -> list[Path]:
    """``DIR/NAME`` then ``DIR`` for every data directory."""
    out: list[Path] = []
    for d in dirs:
        out += [d / name, d]
    return out


def find_fileset(name: str, filesets: Sequence[Sequence[str]],
                 dirs: Sequence[Path]) -> list[Path] | None:
    """The first directory (see ``candidate_dirs``) holding every file of one fileset."""
    for d in candidate_dirs(name, dirs):
        for files in filesets:
            paths = [d / f for f in files]
            if all(p.exists() for p in paths):
                return paths
    return None


def missing_message(name: str, filesets: Sequence[Sequence[str]], dirs: Sequence[Path]) -> str:
    """Say which files were looked for where, and how to point transferlab at them."""
    wanted = " or ".join("{" + ", ".join(fs) + "}" if len(fs) > 1 else fs[0] for fs in filesets)
    if dirs:
        where = "looked in " + ", ".join(str(d) for d in candidate_dirs(name, dirs))
    else:
        where = f"no data directory is set (--data-dir not given and ${DATA_ENV} is empty)"
    return (f"dataset {name!r} not found: need {wanted}; {where}; pass --data-dir DIR (or "
            f"data_dir=DIR) or set {DATA_ENV}=DIR, where DIR holds {name}/<file> or <file>")
