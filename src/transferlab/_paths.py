"""Output paths checked before any work: the one helper every command that writes calls.

A command must never lose data or leave half an output behind because of where the user
asked it to write. So before anything is loaded, trained or created, each output is checked:

- its kind: a file where a file is expected (not a folder, not a path ending in ``/``), a
  folder where a folder is expected (not an existing file), and the nearest existing
  ancestor a writable folder (not a file, not read-only);
- that it is not an input: no file the command writes (the output itself, a checkpoint's
  ``.safetensors`` + ``.json`` pair, a database's ``-wal``/``-shm``/``.lock``/``.cache``
  companions, a named file inside an output folder) may resolve (symlinks followed) to a
  file the same command reads.

Every failure is a ``UserError`` naming the parameter, its value, what is allowed and a fix.
Nothing here creates a file or folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from transferlab.errors import UserError

Inputs = Mapping[str, "str | os.PathLike | Iterable[str | os.PathLike] | None"]


def real(path: str | os.PathLike) -> Path:
    """``path`` with ``~``, ``..`` and every symlink resolved (the path need not exist)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) of a checkpoint given with or without an extension (as
    ``transferlab.checkpoint.checkpoint_paths``, which sits above this floor)."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def database_files(db: str | os.PathLike) -> list[Path]:
    """A SQLite store and the companions the sweep engine writes beside it."""
    db = Path(db)
    return [db] + [db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal", ".lock")]


def database_folders(db: str | os.PathLike) -> list[Path]:
    """Folders the sweep engine creates beside a store (feature cache, kept outputs); their
    files are keyed by content hashes, so an input inside one (a cached pretrained member
    given back as --members) is read, never overwritten."""
    db = Path(db)
    return [db.with_name(db.name + s) for s in (".cache", ".artifacts", ".ensemble")]


def _writable_ancestor(path: Path, param: str, value: str) -> None:
    """The nearest existing ancestor of ``path`` is a folder we can create files in."""
    anc = path
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"{param}={value!r} is invalid: {anc} is a file, not a folder; "
                        "allowed is a path inside a folder; pick another path")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"{param}={value!r} is invalid: folder {anc} is not writable; "
                        "allowed is a path in a folder you can write; pick another path")


def _input_files(inputs: Inputs) -> list[tuple[str, Path]]:
    """(parameter, resolved file) for every input; a checkpoint counts with its sidecar."""
    out = []
    for param, value in inputs.items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        for v in values:
            if v is None or str(v) == "":
                continue
            files = [Path(v)]
            if Path(v).suffix in ("", ".safetensors", ".json") and not Path(v).is_dir():
                files += list(checkpoint_files(v))
            out += [(param, real(f)) for f in files]
    return out


def check_not_input(param: str, value: str, writes: Iterable[str | os.PathLike],
                    inputs: Inputs, folders: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an output that would overwrite an input: any file in ``writes`` that resolves
    to an input file, or any input inside one of the ``folders`` the command fills."""
    written = {real(w) for w in writes}
    filled = [real(f) for f in folders]
    for name, file in _input_files(inputs):
        if file in written or any(file.is_relative_to(f) for f in filled):
            raise UserError(f"{param}={value!r} is invalid: it would overwrite {file}, which "
                            f"{name} reads; allowed is an output apart from the command's "
                            f"inputs; pick another {param}")


def check_output_file(value: str | os.PathLike, param: str, inputs: Inputs = {},
                      also: Iterable[str | os.PathLike] = ()) -> None:
    """``value`` can be written as a file (``also``: companions written beside it) and
    overwrites none of ``inputs``."""
    text = os.fspath(value)
    if not text:
        raise UserError(f"{param}='' is invalid: allowed is a file path; pass one")
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise UserError(f"{param}={text!r} is invalid: it names a folder; allowed is a file "
                        "path; pick a file name inside it")
    p = Path(text)
    if p.exists() and not os.access(p, os.W_OK):
        raise UserError(f"{param}={text!r} is invalid: the file is read-only; allowed is a "
                        "writable file or a new path; pick another path or make it writable")
    _writable_ancestor(p.parent, param, text)
    check_not_input(param, text, [p, *also], inputs)


def check_output_dir(value: str | os.PathLike, param: str = "--out", inputs: Inputs = {},
                     writes: Iterable[str] = (), fills: Iterable[str] = ()) -> None:
    """``value`` can be (or become) an output folder. ``writes``: names of files the
    command writes in it; ``fills``: names of sub-folders it writes (every input inside
    one is refused)."""
    text = os.fspath(value)
    if not text:
        raise UserError(f"{param}='' is invalid: allowed is a folder path; e.g. {param} runs/x")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise UserError(f"{param}={text!r} is invalid: it is an existing file; allowed is a "
                        "folder (existing or new); pick another path")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"{param}={text!r} is invalid: folder {p} is not writable; "
                        "allowed is a folder you can write; pick another path")
    _writable_ancestor(p, param, text)
    for name in writes:
        if (p / name).is_dir():
            raise UserError(f"{param}={text!r} is invalid: {p / name} is a folder where the "
                            "command writes a file; allowed is a folder without it; pick "
                            f"another {param} or move it")
    check_not_input(param, text, [p / n for n in writes], inputs, [p / f for f in fills])


def check_output_checkpoint(value: str, param: str = "--out", inputs: Inputs = {}) -> None:
    """``value`` names a checkpoint (``OUT.safetensors`` + ``OUT.json``) that can be written
    and overwrites none of ``inputs``."""
    if not value or value.endswith(("/", os.sep)) or Path(value).is_dir():
        raise UserError(f"{param}={value!r} is invalid: it names a folder; allowed is a "
                        "checkpoint path such as runs/src (writes runs/src.safetensors and "
                        "runs/src.json)")
    files = checkpoint_files(value)
    for p in files:
        if p.is_dir():
            raise UserError(f"{param}={value!r} is invalid: {p} is a folder; allowed is a "
                            "checkpoint path whose .safetensors/.json are files")
        if p.exists() and not os.access(p, os.W_OK):
            raise UserError(f"{param}={value!r} is invalid: {p} is read-only; allowed is a "
                            "writable checkpoint path; pick another path")
    _writable_ancestor(files[0].parent, param, value)
    check_not_input(param, value, files, inputs)


def check_database(value: str, param: str = "--db", inputs: Inputs = {}) -> None:
    """A sweep store path: a file (not a folder), its companion folders not files, and none
    of its files an input."""
    check_output_file(value, param, inputs, also=database_files(value)[1:])
    for folder in database_folders(value):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{param}={value!r} is invalid: {folder} (its cache/artifacts "
                            "folder) is a file; allowed is a database whose companion "
                            f"folders are folders; move {folder} away or pick another {param}")
