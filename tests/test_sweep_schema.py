"""The store checks its schema version: older or newer stores are refused for writing with
a message naming the file, the versions and the fix; version 1 stays readable."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

from transferlab.errors import UserError
from transferlab.sweep import load_results, run_sweep
from transferlab.sweep.store import APP_ID, SCHEMA_VERSION, Store

FAKE = "transferlab.sweep.testing:fake_trial"
V1_SCHEMA = [  # exactly what schema version 1 created
    "CREATE TABLE trials (key TEXT PRIMARY KEY, sweep TEXT NOT NULL, labels TEXT NOT NULL, "
    "config TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('done', 'failed')), "
    "metrics TEXT, error TEXT, started_at REAL, finished_at REAL, duration_s REAL, "
    "provenance TEXT)",
    "CREATE TABLE sweeps (name TEXT PRIMARY KEY, spec TEXT NOT NULL, updated_at REAL NOT NULL)",
]


def _store_of_version(path, version: int) -> bytes:
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA application_id={APP_ID}")
    con.execute(f"PRAGMA user_version={version}")
    for stmt in V1_SCHEMA:
        con.execute(stmt)
    con.execute("INSERT INTO trials VALUES ('k1', 'old', '{\"protocol\":\"freeze\",\"seed\":0}',"
                " '{\"protocol\":\"freeze:1\"}', 'done', '{\"test_acc\":0.5}', NULL, 1.0, 2.0,"
                " 1.0, NULL)")
    con.commit()
    con.close()
    return path.read_bytes()


@pytest.fixture()
def spec(tmp_path):
    from transferlab.api import pretrain_checkpoint

    pretrain_checkpoint("digits:classes=0-4:size=16", str(tmp_path / "src"),
                        arch_kwargs={"width": 4, "fc_width": 8}, train={"epochs": 0})
    body = {"name": "s", "target": "digits:classes=5-9:size=16",
            "sources": {"a": {"checkpoint": str(tmp_path / "src.safetensors")}},
            "axes": {"protocol": ["freeze:1"]}, "train": {"epochs": 1}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(body))
    return tmp_path / "spec.yaml"


def test_older_store_is_refused_for_a_sweep_but_still_read(spec, tmp_path, capsys):
    from transferlab.cli import main

    db = tmp_path / "old.sqlite"
    before = _store_of_version(db, 1)
    msg = (f"--db={str(db)!r} is a transferlab sweep store of schema version 1: expected "
           f"{SCHEMA_VERSION}; it was written by an older transferlab")
    with pytest.raises(UserError, match="pass a new --db path") as exc:
        run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
    assert str(exc.value).startswith(msg)
    assert main(["sweep", str(spec), "--db", str(db), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"transferlab sweep: error: {msg}")
    assert db.read_bytes() == before  # refused untouched
    df = load_results(db)  # results still read it (no artifacts column: nothing kept)
    assert list(df["key"]) == ["k1"] and df["test_acc"].item() == 0.5 and df["kept"].isna().all()


def test_newer_or_unknown_version_is_refused_for_reading_too(spec, tmp_path):
    for version, why in ((SCHEMA_VERSION + 1, "was written by a newer transferlab; upgrade"),
                         (0, "has no schema this transferlab knows")):
        db = tmp_path / f"v{version}.sqlite"
        before = _store_of_version(db, version)
        with pytest.raises(UserError, match=f"schema version {version}: expected "
                                            f"{SCHEMA_VERSION}; it {why}"):
            run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
        with pytest.raises(UserError, match=f"db={str(db)!r} is a transferlab sweep store of "
                                            f"schema version {version}: expected 1, 2"):
            load_results(db)
        assert db.read_bytes() == before


def test_current_store_reopens_and_records_its_version(spec, tmp_path):
    db = tmp_path / "new.sqlite"
    run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        cols = {r[1] for r in con.execute("PRAGMA table_info(trials)")}
        assert "artifacts" in cols
        assert con.execute("SELECT count(*) FROM sources").fetchone()[0] == 0
    con.close()
    with Store(db) as store:
        assert store.version == SCHEMA_VERSION and len(store.statuses()) == 1
