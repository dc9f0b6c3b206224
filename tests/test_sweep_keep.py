"""Kept trial outputs: weights and test-set probabilities stored beside the database, read
back with load_trial_model / load_trial_probs, and agreeing with each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import transferlab
from transferlab.errors import UserError
from transferlab.sweep import artifacts_root, load_results, run_sweep, testing
from transferlab.sweep.store import Store

TARGET = "digits:classes=5-9:size=16"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from transferlab.api import pretrain_checkpoint

    path = tmp_path_factory.mktemp("src") / "src"
    pretrain_checkpoint("digits:classes=0-4:size=16", str(path),
                        arch_kwargs={"width": 4, "fc_width": 8}, train={"epochs": 0})
    return str(path) + ".safetensors"


def spec(ckpt, **more):
    return {"name": "keep", "target": TARGET, "sources": {"a": {"checkpoint": ckpt}},
            "axes": {"protocol": ["freeze:2"], "seed": 2},
            "train": {"epochs": 1, "batch_size": 64, "device": "cpu"}, **more}


def test_kept_probs_average_equals_recompute_from_kept_weights(ckpt, tmp_path):
    db = tmp_path / "k.sqlite"
    df = run_sweep(spec(ckpt, keep=["weights", "probs"]), db, workers=1, progress=False)
    assert (df["status"] == "done").all() and len(df) == 2
    assert (df["kept"] == "probs,weights").all()
    task = transferlab.make_task(TARGET)
    stored, recomputed = [], []
    for key in df["key"]:
        probs, labels = transferlab.load_trial_probs(db, key)
        assert probs.dtype == np.float32 and probs.shape == (len(task.y_test), 5)
        np.testing.assert_array_equal(labels, task.y_test.numpy())
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
        model, meta = transferlab.load_trial_model(db, key)
        assert meta["trial_config"]["seed"] in (0, 1) and meta["task"] == TARGET
        with torch.no_grad():  # an independent recompute: one batch, plain softmax
            recomputed.append(torch.softmax(model.eval()(task.x_test), 1).numpy())
        stored.append(probs)
        # The stored test accuracy is the accuracy of the stored probabilities.
        acc = df.loc[df["key"] == key, "test_acc"].item()
        assert acc == pytest.approx((probs.argmax(1) == labels).mean(), abs=1e-9)
    assert not np.allclose(stored[0], stored[1])  # two seeds, two models: a real average
    np.testing.assert_allclose(np.mean(stored, 0), np.mean(recomputed, 0), atol=1e-6, rtol=0)


def test_keep_is_off_by_default_and_asking_later_runs_done_trials_again(ckpt, tmp_path):
    db = tmp_path / "k.sqlite"
    fake = "transferlab.sweep.testing:fake_trial"
    testing.CALLS.clear()
    df = run_sweep(spec(ckpt), db, workers=1, progress=False, trial_fn=fake)
    assert df["kept"].isna().all() and not artifacts_root(db).exists()
    with pytest.raises(UserError, match="kept no probs: allowed are trials run with keep"):
        transferlab.load_trial_probs(db, df["key"].iloc[0])
    with pytest.raises(UserError, match="is not a trial of db="):
        transferlab.load_trial_model(db, "0" * 64)
    run_sweep(spec(ckpt), db, workers=1, progress=False, trial_fn=fake)
    assert len(testing.CALLS) == 2  # resumed: nothing ran again
    df2 = run_sweep(spec(ckpt), db, workers=1, progress=False, keep="probs")
    assert (df2["kept"] == "probs").all() and set(df2["key"]) == set(df["key"])
    probs, _ = transferlab.load_trial_probs(db, df2["key"].iloc[0])
    assert probs.shape[1] == 5
    with pytest.raises(UserError, match=r"--keep='logits' is invalid: allowed are weights, probs"):
        run_sweep(spec(ckpt), db, workers=1, progress=False, keep="logits")


def test_unreferenced_artifacts_are_pruned(ckpt, tmp_path):
    db = tmp_path / "k.sqlite"
    df = run_sweep(spec(ckpt, keep=["probs"]), db, workers=1, progress=False)
    root = artifacts_root(db)
    orphan = root / ("f" * 64)  # e.g. a trial killed after writing, before its row
    orphan.mkdir()
    (orphan / "probs.safetensors").write_bytes(b"x")
    with Store(db) as store:  # a row that no longer refers to its outputs
        row = store.rows([df["key"].iloc[0]])[0]
        store.put(row["key"], row["sweep"], row["labels"], row["config"], "done",
                  row["metrics"], None, row["started_at"], row["finished_at"], None)
    run_sweep(spec(ckpt), db, workers=1, progress=False)  # keeps nothing: prunes only
    assert sorted(p.name for p in root.iterdir()) == sorted(df["key"].iloc[1:])
    run_sweep(spec(ckpt, keep=["probs"]), db, workers=1, progress=False)  # reruns that one
    assert sorted(p.name for p in root.iterdir()) == sorted(df["key"])
    assert (load_results(db)["kept"] == "probs").all()


def test_cli_keep_flag(ckpt, tmp_path, capsys):
    import yaml

    from transferlab.cli import main

    path, db = tmp_path / "spec.yaml", tmp_path / "c.sqlite"
    path.write_text(yaml.safe_dump(spec(ckpt)))
    assert main(["sweep", str(path), "--db", str(db), "--keep", "weights,bogus", "--quiet"]) == 2
    assert "--keep='bogus' is invalid: allowed are weights, probs" in capsys.readouterr().err
    assert not db.exists()
    assert main(["sweep", str(path), "--db", str(db), "--keep", "weights", "--quiet",
                 "--workers", "1"]) == 0
    df = load_results(db)
    assert (df["kept"] == "weights").all() and len(df) == 2
    model, meta = transferlab.load_trial_model(db, df["key"].iloc[0])
    assert meta["trial_config"]["protocol"] == "freeze:2"
    assert meta["task_fingerprint"] == transferlab.make_task(TARGET).fingerprint
    assert meta["trial_config"]["task_fingerprint"] == meta["task_fingerprint"]
