"""The store, trial keys, resume, failures and the results table (stub trials, in-process)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from transferlab.errors import UserError
from transferlab.sweep import aggregate, load_results, run_sweep, testing, trial_key
from transferlab.sweep.runner import key_config
from transferlab.sweep.store import Store
from transferlab.train import TrainConfig

FAKE = "transferlab.sweep.testing:fake_trial"
TRAIN = TrainConfig(epochs=1).to_dict()
CFG = {"source": "/x/src.safetensors", "source_sha256": "ab" * 32,
       "task": "digits:classes=5-9:size=16", "protocol": "freeze:3", "seed": 0,
       "train": TRAIN, "data_dir": None}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from transferlab.api import pretrain_checkpoint

    path = tmp_path_factory.mktemp("src") / "src"
    pretrain_checkpoint("digits:classes=0-4:size=16", str(path),
                        arch_kwargs={"width": 4, "fc_width": 8}, train={"epochs": 0})
    return str(path) + ".safetensors"


@pytest.fixture(autouse=True)
def clean_stub():
    testing.CALLS.clear()
    testing.FAIL.clear()
    yield
    testing.FAIL.clear()


def spec(ckpt, seeds=2):
    return {"name": "s", "target": "digits:classes=5-9:size=16",
            "sources": {"a": {"checkpoint": ckpt}},
            "axes": {"protocol": ["freeze", "finetune"], "depth": [1, 2], "seed": seeds},
            "train": {"epochs": 1}}


def run(ckpt, db, **kw):
    return run_sweep(spec(ckpt, kw.pop("seeds", 2)), db, workers=1, progress=False,
                     trial_fn=FAKE, **kw)


def test_key_is_sha256_of_canonical_json():
    expected = hashlib.sha256(json.dumps(key_config(CFG), sort_keys=True,
                                         separators=(",", ":")).encode()).hexdigest()
    assert trial_key(key_config(CFG)) == expected
    # Insertion order does not matter, and a fresh interpreter gets the same key.
    reordered = dict(reversed(list(key_config(CFG).items())))
    assert trial_key(reordered) == expected
    code = ("import json,sys; from transferlab.sweep import trial_key; "
            "print(trial_key(json.loads(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(reordered)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == expected


def test_key_changes_with_every_field_but_not_with_locations():
    base = trial_key(key_config(CFG))
    variants = [{"source_sha256": "cd" * 32}, {"task": "digits:classes=5-9:size=8"},
                {"protocol": "freeze:4"}, {"seed": 1}]
    alt = {"epochs": 2, "batch_size": 64, "optimizer": "adamw", "lr": 0.01, "momentum": 0.5,
           "weight_decay": 0.0, "schedule": "none", "patience": 3, "lr_mult": 0.5,
           "layer_decay": 0.9, "crop_padding": 2, "hflip": True, "device": "cpu",
           "bf16": False, "channels_last": False, "max_grad_norm": 1.0, "l2": 0.1,
           "min_steps": 7}
    assert set(alt) == set(TRAIN), "every TrainConfig field must be tried"
    variants += [{"train": {**TRAIN, k: v}} for k, v in alt.items()]
    keys = {trial_key(key_config({**CFG, **v})) for v in variants}
    assert len(keys) == len(variants) and base not in keys
    for loc in ({"source": "/elsewhere/src.safetensors"}, {"data_dir": "/data"}):
        assert trial_key(key_config({**CFG, **loc})) == base


def test_resume_skips_finished_trials(ckpt, tmp_path):
    db = tmp_path / "r.sqlite"
    run(ckpt, db, seeds=1)
    assert len(testing.CALLS) == 3  # freeze:1, freeze:2, finetune
    run(ckpt, db, seeds=1)
    assert len(testing.CALLS) == 3  # nothing ran again
    df = run(ckpt, db, seeds=2)     # a wider grid runs only the new seed
    assert len(testing.CALLS) == 6 and len(df) == 6
    assert {c["seed"] for c in testing.CALLS[3:]} == {1}


def test_failure_is_stored_and_sweep_continues_then_retry(ckpt, tmp_path):
    db = tmp_path / "r.sqlite"
    testing.FAIL.update(protocol="freeze:2", seed=1, how="raise")
    df = run(ckpt, db)
    assert len(df) == 6 and (df["status"] == "failed").sum() == 1
    bad = df[df["status"] == "failed"].iloc[0]
    assert (bad["protocol_spec"], bad["seed"]) == ("freeze:2", 1)
    assert "RuntimeError: injected failure for freeze:2 seed 1" in bad["error"]
    n = len(testing.CALLS)
    run(ckpt, db)  # failed trials are not retried by default
    assert len(testing.CALLS) == n
    testing.FAIL.clear()
    df = run(ckpt, db, retry_failed=True)
    assert len(testing.CALLS) == n + 1 and testing.CALLS[-1]["protocol"] == "freeze:2"
    assert (df["status"] == "done").all()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*), count(DISTINCT key) FROM trials").fetchone() == \
            (6, 6)


def test_diverged_trial_is_failed_with_reason(ckpt, tmp_path):
    testing.FAIL.update(protocol="finetune", seed=0, how="diverge")
    df = run(ckpt, tmp_path / "r.sqlite")
    bad = df[df["status"] == "failed"]
    assert len(bad) == 1 and bad.iloc[0]["error"] == "diverged: loss is nan at epoch 1"
    assert bad.iloc[0]["outcome"] == "diverged"  # its metrics are kept for inspection


@pytest.mark.parametrize("content", [b"not a database at all\n", b"SQLite format 3\x00junk"])
def test_non_store_file_is_rejected_untouched(ckpt, tmp_path, content):
    db = tmp_path / "x.sqlite"
    db.write_bytes(content)
    if content.startswith(b"not"):
        match = "is not a SQLite database"
    else:  # a real SQLite file of some other application
        db.unlink()
        with sqlite3.connect(db) as con:
            con.execute("CREATE TABLE other (a)")
        con.close()
        match = "is a SQLite database but not a transferlab sweep store"
    before = db.read_bytes()
    with pytest.raises(UserError, match=match):
        run(ckpt, db)
    with pytest.raises(UserError, match=match):
        load_results(db)
    assert db.read_bytes() == before and testing.CALLS == []


def test_store_rows_and_integrity(ckpt, tmp_path):
    db = tmp_path / "r.sqlite"
    run(ckpt, db)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db, readonly=True) as store:
        rows = store.rows()
    for r in rows:
        assert r["key"] == trial_key(key_config(r["config"]))
        assert r["provenance"]["versions"]["transferlab"]
        assert r["duration_s"] >= 0


def test_aggregate_known_answer():
    df = pd.DataFrame({"status": ["done"] * 5 + ["failed"],
                       "protocol": ["freeze", "freeze", "freeze", "finetune", "finetune",
                                    "finetune"],
                       "depth": pd.array([1, 1, 2, None, None, None], dtype="Int64"),
                       "test_acc": [0.5, 0.7, 0.9, 0.2, 0.4, 99.0]})
    out = aggregate(df, by=["protocol", "depth"], metric="test_acc")
    got = {(p, None if pd.isna(d) else int(d)): (m, s, n) for p, d, m, s, n in
           out[["protocol", "depth", "mean", "std", "n"]].itertuples(index=False)}
    assert got.keys() == {("finetune", None), ("freeze", 1), ("freeze", 2)}
    np.testing.assert_allclose(got[("freeze", 1)][:2], [0.6, np.std([0.5, 0.7], ddof=1)])
    np.testing.assert_allclose(got[("finetune", None)][:2], [0.3, np.std([0.2, 0.4], ddof=1)])
    assert got[("freeze", 2)][2] == 1 and np.isnan(got[("freeze", 2)][1])
    with pytest.raises(UserError, match=r"columns \['colour'\] are not in the results"):
        aggregate(df, by=["colour"])


def test_results_cli_marks_best_and_writes_csv(ckpt, tmp_path, capsys):
    from transferlab.cli import main

    db = tmp_path / "r.sqlite"
    df = run(ckpt, db)
    assert main(["results", str(db), "--by", "protocol,depth"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    table = aggregate(df, ["protocol", "depth"])
    # the star marks the cell of best mean VALIDATION accuracy; test accuracy is shown
    best = table.loc[aggregate(df, ["protocol", "depth"], metric="val_acc")["mean"].idxmax()]
    starred = [ln for ln in lines if ln.rstrip().endswith("*")]
    assert len(starred) == 1 and f"{best['mean']:.4f}" in starred[0]
    csv = tmp_path / "t.csv"
    assert main(["results", str(db), "--by", "protocol,depth", "--csv", str(csv)]) == 0
    back = pd.read_csv(csv)
    np.testing.assert_allclose(back["mean"], table["mean"])
    assert back["best"].sum() == 1
