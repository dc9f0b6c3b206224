"""One driver per database: an exclusive lock on ``<db>.lock`` held while a sweep runs.

Why a lock file and not SQLite's own locking: SQLite locks one transaction, but a sweep is
a read of what is stored, then minutes of trials, then writes; two drivers would both see a
trial missing and both run it. An OS lock (``flock``) on a file beside the database is held
for the whole sweep and is released by the kernel when its process dies, so a killed driver
never leaves a stale lock behind. The holder writes its pid and host into the file, so the
refused driver can name it. Readers (``transferlab results``) take no lock: SQLite's WAL
mode lets them read while the driver writes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from transferlab.errors import UserError

try:  # POSIX; elsewhere filelock's portable lock is used (without the holder's pid)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


def lock_path(db_path: str | os.PathLike) -> Path:
    db = Path(db_path)
    return db.with_name(db.name + ".lock")


class DriverLock:
    """``with DriverLock(db):`` holds the database's driver lock or raises ``UserError``.

    Not re-entrant: a second ``DriverLock`` on the same database, even in the same
    process, is refused (``flock`` locks belong to an open file, not a process).
    """

    def __init__(self, db_path: str | os.PathLike):
        self.db_path = Path(db_path)
        self.path = lock_path(self.db_path)
        self._fd: int | None = None
        self._portable = None

    def _refuse(self, holder: str) -> UserError:
        return UserError(f"--db={str(self.db_path)!r} is in use by another sweep ({holder}): "
                         "allowed is one driver per database; wait for it to finish, or pass "
                         "another --db (reading it with `transferlab results` is fine)")

    def acquire(self) -> DriverLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover - Windows
            from filelock import FileLock, Timeout

            self._portable = FileLock(str(self.path))
            try:
                self._portable.acquire(timeout=0)
            except Timeout:
                raise self._refuse("holder unknown") from None
            return self
        # No O_TRUNC: a refused driver must not erase the holder's pid before reading it.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, 4096, 0).decode(errors="replace")
            finally:
                os.close(fd)
            raise self._refuse(_describe(raw)) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            # Empty the file before unlocking: a file with a pid always has a live holder.
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None
        if self._portable is not None:  # pragma: no cover - Windows
            self._portable.release()
            self._portable = None

    def __enter__(self) -> DriverLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(raw: str) -> str:
    """'pid 123 on host h, since 10:02:11 UTC' from the holder's record (or what is known)."""
    try:
        info = json.loads(raw)
        since = time.strftime("%H:%M:%S UTC", time.gmtime(float(info["since"])))
        return f"pid {int(info['pid'])} on host {info['host']}, since {since}"
    except (ValueError, KeyError, TypeError):
        return "holder starting, pid not yet written"
