"""Sweeps with fused jobs: trials differing by episode, lr or depth run as one fused model,
and each is stored as its own row with the key, metrics and outputs of a plain run."""

from __future__ import annotations

import numpy as np
import pytest

import transferlab
from transferlab.sweep import load_results, run_sweep
from transferlab.sweep.runner import _fused_jobs

TARGET = "digits:classes=5-9:per_class=20:size=8"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from transferlab.api import pretrain_checkpoint

    path = tmp_path_factory.mktemp("src") / "src"
    pretrain_checkpoint("digits:classes=0-4:size=8", str(path),
                        arch_kwargs={"width": 4, "fc_width": 16},
                        train={"epochs": 3, "lr": 0.05, "device": "cpu"})
    return str(path) + ".safetensors"


def spec(ckpt, **more):
    return {"name": "fused", "target": TARGET, "sources": {"a": {"checkpoint": ckpt}},
            "axes": {"protocol": ["freeze:1", "freeze:3", "linear-probe"], "seed": [1],
                     "lr": [0.05, 0.02], "episode": [0, 1]},
            "train": {"epochs": 2, "batch_size": 16, "device": "cpu"}, **more}


def test_fused_sweep_rows_equal_plain_rows_and_resume(ckpt, tmp_path):
    plain = run_sweep(spec(ckpt), tmp_path / "p.sqlite", workers=1, progress=False,
                      fuse=False)
    db = tmp_path / "f.sqlite"
    fused = run_sweep(spec(ckpt, keep=["probs"]), db, workers=1, progress=False, fuse=True)
    assert len(fused) == len(plain) == 12 and (fused["status"] == "done").all()
    assert set(fused["key"]) == set(plain["key"])  # keys do not depend on fusing
    p = plain.set_index("key").loc[fused["key"]]
    n_test = len(transferlab.make_task(TARGET).y_test)
    np.testing.assert_allclose(fused["test_acc"], p["test_acc"], atol=1 / n_test + 1e-9)
    np.testing.assert_allclose(fused["test_nll"], p["test_nll"], rtol=1e-4)
    # freeze:1 and freeze:3 at both lrs and episodes (per-trial support sets): one fused
    # job of 8; the probe alone.
    freeze = fused["protocol"] == "freeze"
    assert freeze.sum() == 8 and (fused.loc[freeze, "fused_trials"] == 8).all()
    assert fused.loc[~freeze, "fused_trials"].isna().all()
    probs, labels = transferlab.load_trial_probs(db, fused["key"].iloc[0])
    assert probs.shape == (n_test, 5)
    acc = fused.loc[fused["key"] == fused["key"].iloc[0], "test_acc"].item()
    assert acc == pytest.approx((probs.argmax(1) == labels).mean(), abs=1e-9)
    again = run_sweep(spec(ckpt, keep=["probs"]), db, workers=1, progress=False, fuse=True)
    assert list(again["finished_at"]) == list(fused["finished_at"])  # resumed: nothing ran
    assert len(load_results(db)) == 12


def test_grouping_rules(ckpt, tmp_path):
    import shutil

    copy = tmp_path / "copy.safetensors"  # another checkpoint of the same architecture
    shutil.copy(ckpt, copy)
    shutil.copy(ckpt.replace(".safetensors", ".json"), tmp_path / "copy.json")
    jobs = [{"kind": "trial", "key": str(i), "cfg": {
        "source": src, "task": "t", "protocol": proto, "seed": seed,
        "train": {"lr": lr, "device": "cpu", **extra}}}
        for i, (src, proto, seed, lr, extra) in enumerate([
            (ckpt, "freeze:1", 0, 0.1, {}), (str(copy), "freeze:2", 1, 0.2, {}),
            (ckpt, "finetune", 0, 0.1, {}), (ckpt, "freeze:1", 0, 0.1, {"epochs": 3}),
            (ckpt, "linear-probe", 0, 0.1, {}), (ckpt, "finetune", 1, 0.1, {"hflip": True}),
            ("elsewhere.safetensors", "freeze:1", 0, 0.1, {})])]
    out = _fused_jobs(jobs, True)
    groups = sorted(sorted(m["key"] for m in j["jobs"]) for j in out if j["kind"] == "group")
    assert groups == [["0", "1"]]  # only the two freeze trials share everything else
    assert sorted(j["key"] for j in out if j["kind"] == "trial") == ["2", "3", "4", "5", "6"]
    assert _fused_jobs(jobs, None) == jobs  # auto: CPU trials run alone
    assert _fused_jobs(jobs, False) == jobs


def test_group_jobs_store_each_outcome_and_fall_back_to_plain_runs(ckpt):
    from transferlab.sweep.worker import execute

    def job(key, protocol, lr):
        return {"kind": "trial", "key": key, "cfg": {
            "source": ckpt, "task": TARGET, "protocol": protocol, "seed": 0,
            "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "lr": lr}}}

    # A diverging member fails alone, with the plain loop's reason; the other is done.
    res = execute({"kind": "group", "jobs": [job("a", "freeze:1", 0.05),
                                             job("b", "freeze:1", 1e12)]})
    assert res["status"] == "group"
    ok, bad = res["results"]
    assert ok["status"] == "done" and ok["metrics"]["fused_trials"] == 2
    assert bad["status"] == "failed" and bad["error"].startswith("diverged: training loss")
    # A group the fused engine refuses (l2sp's step hook) runs its trials one by one.
    res = execute({"kind": "group", "jobs": [job("c", "l2sp", 0.05), job("d", "l2sp", 0.02)]})
    assert [r["status"] for r in res["results"]] == ["done", "done"]
    assert all("fused_trials" not in r["metrics"] for r in res["results"])
