"""The sweep store: one SQLite file (WAL mode), one row per finished trial.

Why SQLite: a sweep is killed, resumed, read while it runs and shared by studies; SQLite
gives atomic commits (a trial is either fully stored or absent), concurrent readers under
WAL, and a single portable file. Only the process driving the sweep writes to it, and
only one process drives a database at a time (``sweep/lock.py``).

A trial's identity is ``trial_key(config)``: the sha256 of its fully resolved config as
canonical JSON (sorted keys). The config holds the source checkpoint's content hash, not its
path, and the target task's data fingerprint (``Task.fingerprint``), not only its string, so
moving the database keeps every key and changed data makes new ones.

Schema versions: 1 (trials, sweeps); 2 adds ``trials.artifacts`` (kept weights/probabilities)
and the ``sources`` table (pretrained sources, failed ones with their reason), and its trial
keys hold the data fingerprint. A version-1 store is read (``transferlab results``) but not
resumed: none of its keys would match, so a resume would run every trial again next to the old
rows; a newer or foreign file is refused. See docs/sweeps.md "Schema".
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from transferlab.errors import UserError

APP_ID = 0x544C5357  # "TLSW": marks a SQLite file as a transferlab sweep store
SCHEMA_VERSION = 2
# Versions this code reads (read-only); it writes only SCHEMA_VERSION.
READABLE_VERSIONS = (1, 2)
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    key TEXT PRIMARY KEY,
    sweep TEXT NOT NULL,
    labels TEXT NOT NULL,      -- JSON: the grid coordinates (source, protocol, depth, seed, axes)
    config TEXT NOT NULL,      -- JSON: the fully resolved trial config (hashed into key)
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    metrics TEXT,              -- JSON metrics dict from run_trial (also kept for diverged runs)
    error TEXT,
    started_at REAL,
    finished_at REAL,
    duration_s REAL,
    provenance TEXT,
    artifacts TEXT             -- JSON {"weights": rel. path, "probs": rel. path} or NULL (v2)
);
CREATE TABLE IF NOT EXISTS sources (
    key TEXT PRIMARY KEY,      -- the source's cache key (hash of its pretraining config)
    name TEXT NOT NULL,        -- the spec's source name
    config TEXT NOT NULL,      -- JSON: the resolved pretraining config
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    metrics TEXT,
    error TEXT,
    finished_at REAL
);
CREATE TABLE IF NOT EXISTS sweeps (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,        -- JSON of the validated spec, as last run
    updated_at REAL NOT NULL
);
"""


def canonical_json(obj) -> str:
    """JSON with sorted keys and no whitespace: equal configs give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def trial_key(config: dict) -> str:
    """sha256 (hex) of the canonical JSON of a resolved trial config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _json_safe(obj):
    """Replace NaN/inf (not valid JSON) by None, recursively, so metrics always serialise."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _json_safe(obj.item())
    return obj


def _ro_uri(path: Path) -> str:
    """A read-only SQLite URI (percent-encoded, so any file name works)."""
    return Path(path).resolve().as_uri() + "?mode=ro"


def check_store_file(path: str | os.PathLike, param: str = "--db",
                     readonly: bool = False) -> int | None:
    """Raise ``UserError`` if ``path`` exists and is not a store this code may open; never
    writes. Returns the schema version found (None for a new or empty file).

    ``readonly``: also accept the older versions in ``READABLE_VERSIONS``.
    """
    path = Path(path)
    if not path.exists():
        return None
    if path.is_dir():
        raise UserError(f"{param}={str(path)!r} is a directory: allowed is a SQLite file path; "
                        "pass a file name such as results.sqlite")
    with open(path, "rb") as fh:
        head = fh.read(100)
    if not head:
        return None
    if not head.startswith(SQLITE_MAGIC):
        raise UserError(f"{param}={str(path)!r} is not a SQLite database: allowed is a "
                        "transferlab sweep store or a new file; pass another path (the file "
                        "was left untouched)")
    # Ask SQLite rather than read header bytes 68..72: in WAL mode a new store's
    # application_id may still sit in the -wal file. Read-only, so nothing is written.
    header_id = int.from_bytes(head[68:72], "big")
    try:
        con = sqlite3.connect(_ro_uri(path), uri=True, timeout=30)
        try:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            version = con.execute("PRAGMA user_version").fetchone()[0]
            n_tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if header_id == APP_ID:
            return None
        raise UserError(f"{param}={str(path)!r} cannot be read as SQLite ({exc}): allowed is a "
                        "transferlab sweep store or a new file; pass another path (the file "
                        "was left untouched)") from exc
    if app_id != APP_ID and n_tables:
        raise UserError(f"{param}={str(path)!r} is a SQLite database but not a transferlab "
                        "sweep store: allowed is a store written by `transferlab sweep` or a "
                        "new file; pass another path (the file was left untouched)")
    if app_id != APP_ID or not n_tables:
        return None  # a new store (possibly mid-creation)
    if version == SCHEMA_VERSION or (readonly and version in READABLE_VERSIONS):
        return version
    if version > SCHEMA_VERSION:
        why = ("was written by a newer transferlab; upgrade transferlab to read it, or pass "
               "another path")
    elif version in READABLE_VERSIONS:
        why = ("was written by an older transferlab whose trial keys do not include the data "
               "fingerprint, so resuming would run every trial again next to the old rows; "
               "pass a new --db path (`transferlab results` still reads this file)")
    else:
        why = "has no schema this transferlab knows; pass another path"
    allowed = ", ".join(map(str, READABLE_VERSIONS if readonly else (SCHEMA_VERSION,)))
    raise UserError(f"{param}={str(path)!r} is a transferlab sweep store of schema version "
                    f"{version}: expected {allowed}; it {why} (the file was left untouched)")


class Store:
    """A sweep database. Use as a context manager or call ``close()``.

    Every write is one transaction, so a crash leaves either the whole trial or nothing.
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = False):
        self.path = Path(path)
        self.version = check_store_file(self.path, "db" if readonly else "--db", readonly)
        if readonly:
            if not self.path.exists():
                raise UserError(f"db={str(self.path)!r} does not exist: allowed is a store "
                                "written by `transferlab sweep`; check the path")
            self.con = sqlite3.connect(_ro_uri(self.path), uri=True, timeout=30)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode; FULL only adds power-loss
        # safety at a cost per commit, and a trial lost to a power cut simply runs again.
        self.con.execute("PRAGMA synchronous=NORMAL")
        with self.transaction():
            self.con.execute(f"PRAGMA application_id={APP_ID}")
            self.con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            # Statement by statement: executescript() would commit our open transaction.
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.con.execute(stmt)
        self.version = SCHEMA_VERSION

    def transaction(self):
        store = self

        class _Tx:
            def __enter__(self):
                store.con.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                store.con.execute("ROLLBACK" if exc_type else "COMMIT")
                return False

        return _Tx()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reads -------------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        """``{key: status}`` for every stored trial."""
        return dict(self.con.execute("SELECT key, status FROM trials"))

    def rows(self, keys: Iterable[str] | None = None) -> list[dict]:
        """Stored trials as dicts with JSON columns decoded (all, or those in ``keys``)."""
        # A version-1 store has no artifacts column: read it as NULL.
        artifacts = "artifacts" if (self.version or SCHEMA_VERSION) >= 2 else "NULL"
        cur = self.con.execute("SELECT key, sweep, labels, config, status, metrics, error, "
                               f"started_at, finished_at, duration_s, provenance, {artifacts} "
                               "FROM trials ORDER BY finished_at, key")
        wanted = None if keys is None else set(keys)
        out = []
        for row in cur:
            if wanted is not None and row[0] not in wanted:
                continue
            out.append({"key": row[0], "sweep": row[1], "labels": json.loads(row[2]),
                        "config": json.loads(row[3]), "status": row[4],
                        "metrics": json.loads(row[5]) if row[5] else {}, "error": row[6],
                        "started_at": row[7], "finished_at": row[8], "duration_s": row[9],
                        "provenance": json.loads(row[10]) if row[10] else None,
                        "artifacts": json.loads(row[11]) if row[11] else None})
        return out

    def artifacts(self) -> dict[str, dict | None]:
        """``{key: artifacts}`` for every stored trial (``{"weights": ..., "probs": ...}``
        paths relative to ``artifacts_root(db)``, or None)."""
        if (self.version or SCHEMA_VERSION) < 2:
            return {}
        return {k: json.loads(a) if a else None
                for k, a in self.con.execute("SELECT key, artifacts FROM trials")}

    def sources(self) -> dict[str, dict]:
        """``{source key: {name, config, status, metrics, error}}`` of pretrained sources."""
        if (self.version or SCHEMA_VERSION) < 2:
            return {}
        return {r[0]: {"name": r[1], "config": json.loads(r[2]), "status": r[3],
                       "metrics": json.loads(r[4]) if r[4] else None, "error": r[5]}
                for r in self.con.execute("SELECT key, name, config, status, metrics, error "
                                          "FROM sources")}

    # --- writes ------------------------------------------------------------------------
    def record_sweep(self, name: str, spec: dict) -> None:
        with self.transaction():
            self.con.execute("INSERT OR REPLACE INTO sweeps (name, spec, updated_at) "
                             "VALUES (?, ?, ?)", (name, canonical_json(_json_safe(spec)),
                                                  time.time()))

    def put(self, key: str, sweep: str, labels: dict, config: dict, status: str,
            metrics: dict | None, error: str | None, started_at: float, finished_at: float,
            provenance: dict | None, artifacts: dict | None = None) -> None:
        """Store one finished trial (replacing an earlier attempt with the same key)."""
        if status not in ("done", "failed"):
            raise ValueError(f"status={status!r}")
        with self.transaction():
            self.con.execute(
                "INSERT OR REPLACE INTO trials (key, sweep, labels, config, status, metrics, "
                "error, started_at, finished_at, duration_s, provenance, artifacts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, sweep, canonical_json(_json_safe(labels)), canonical_json(config), status,
                 canonical_json(_json_safe(metrics)) if metrics is not None else None, error,
                 started_at, finished_at, finished_at - started_at,
                 canonical_json(_json_safe(provenance)) if provenance else None,
                 canonical_json(artifacts) if artifacts else None))

    def put_source(self, key: str, name: str, config: dict, status: str,
                   metrics: dict | None, error: str | None) -> None:
        """Store the outcome of pretraining one source (replacing an earlier attempt)."""
        if status not in ("done", "failed"):
            raise ValueError(f"status={status!r}")
        with self.transaction():
            self.con.execute(
                "INSERT OR REPLACE INTO sources (key, name, config, status, metrics, error, "
                "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, name, canonical_json(_json_safe(config)), status,
                 canonical_json(_json_safe(metrics)) if metrics is not None else None, error,
                 time.time()))
