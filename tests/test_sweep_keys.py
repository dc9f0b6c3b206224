"""Trial keys name the data, not only the task string; failed pretraining fails its trials."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from transferlab.data import make_task
from transferlab.errors import UserError
from transferlab.sweep import foundation, load_results, run_sweep, testing
from transferlab.sweep.cache import source_path
from transferlab.sweep.store import Store

FAKE = "transferlab.sweep.testing:fake_trial"
TINY = {"width": 4, "fc_width": 8}


@pytest.fixture(autouse=True)
def clean_stub():
    testing.CALLS.clear()
    testing.FAIL.clear()
    yield
    testing.CALLS.clear()


def _image_folder(root, n_train=6, n_test=3):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
                    root / split / c / f"{i}.png")
    return root


def test_changed_image_folder_runs_again_unchanged_resumes(tmp_path):
    from transferlab.api import pretrain_checkpoint

    folder = _image_folder(tmp_path / "imgs")
    task = f"{folder}:size=8"
    ckpt = tmp_path / "src"
    pretrain_checkpoint(task, str(ckpt), arch_kwargs=TINY, train={"epochs": 0})
    spec = {"name": "f", "target": task, "sources": {"a": {"checkpoint": str(ckpt)}},
            "axes": {"protocol": ["freeze:1"]}, "train": {"epochs": 1}}
    db = tmp_path / "k.sqlite"
    first = run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
    again = run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
    assert len(testing.CALLS) == 1  # unchanged data: the stored trial is resumed
    assert list(again["key"]) == list(first["key"])

    # One test image changes (same name, same size on disk is not required to be caught).
    img = folder / "test" / "dog" / "1.png"
    Image.fromarray(np.full((8, 8), 7, dtype=np.uint8)).save(img)
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
    assert len(testing.CALLS) == 2  # not skipped: it ran again, under a new key
    assert changed["key"].item() != first["key"].item()
    fps = [c["task_fingerprint"] for c in testing.CALLS]
    assert fps[0] != fps[1] and all(len(f) == 64 for f in fps)
    assert {c["task"] for c in testing.CALLS} == {first["task"].item()}  # same string
    assert len(load_results(db)) == 2 and all(c["key_version"] == 2 for c in testing.CALLS)


def test_run_trial_refuses_data_that_differs_from_its_key(tmp_path):
    from transferlab.api import pretrain_checkpoint, run_trial

    ckpt = tmp_path / "src"
    pretrain_checkpoint("digits:classes=0-4:size=16", str(ckpt), arch_kwargs=TINY,
                        train={"epochs": 0})
    cfg = {"source": str(ckpt), "task": "digits:classes=5-9:size=16", "protocol": "freeze:2",
           "seed": 0, "train": {"epochs": 1}, "task_fingerprint": "0" * 64}
    with pytest.raises(UserError, match="its data changed since the sweep was planned"):
        run_trial(cfg)


def test_diverged_pretraining_fails_with_reason_and_so_do_its_trials(tmp_path, monkeypatch):
    calls = []
    real = foundation.pretrain_checkpoint

    def counting(**kw):
        calls.append(kw["task"])
        return real(**kw)

    monkeypatch.setattr(foundation, "pretrain_checkpoint", counting)
    src = {"task": "digits:classes=0-4:size=16", "arch_kwargs": TINY}
    spec = {"name": "d", "target": "digits:classes=5-9:size=16",
            "sources": {"good": {"pretrain": src, "epochs": 0},
                        "bad": {"pretrain": {**src, "train": {"epochs": 1, "lr": 1e6,
                                                              "device": "cpu"}}}},
            "axes": {"protocol": ["freeze:1", "finetune"]}, "train": {"epochs": 1}}
    db = tmp_path / "d.sqlite"
    df = run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)
    assert len(calls) == 2 and len(df) == 4
    status = dict(zip(df["source"] + "/" + df["protocol_spec"], df["status"]))
    assert status == {"good/freeze:1": "done", "good/finetune": "done",
                      "bad/freeze:1": "failed", "bad/finetune": "failed"}
    assert len(testing.CALLS) == 2  # only the good source's trials ran
    for err in df.loc[df["source"] == "bad", "error"]:
        assert err.startswith("source 'bad' (trial seed 0) failed to pretrain, and this "
                              "trial needs it: diverged: training loss became nan")
        assert "fix sources.bad.pretrain (e.g. a lower lr)" in err
    with Store(db, readonly=True) as store:
        sources = store.sources()
    by_name = {v["name"]: v for v in sources.values()}
    assert by_name["good"]["status"] == "done" and by_name["good"]["error"] is None
    # A source is cached under its recipe and the fingerprint of its pretraining data.
    assert by_name["good"]["config"]["task_fingerprint"] == \
        make_task("digits:classes=0-4:size=16").fingerprint
    assert by_name["bad"]["status"] == "failed"
    assert by_name["bad"]["error"].startswith("diverged: training loss became nan in epoch 1")
    bad_key = next(k for k, v in sources.items() if v["name"] == "bad")
    assert not any(source_path(db, by_name["bad"]["config"]).parent.glob("*.safetensors"))
    assert source_path(db, by_name["bad"]["config"]).parent.name == bad_key

    run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE)  # resume: nothing again
    assert len(calls) == 2 and len(testing.CALLS) == 2
    df = run_sweep(spec, db, workers=1, progress=False, trial_fn=FAKE, retry_failed=True)
    assert calls[2:] == ["digits:classes=0-4:size=16"]  # the bad source is retried alone
    assert (df.loc[df["source"] == "bad", "status"] == "failed").all()
    assert len(load_results(db)) == 4  # no trial stored twice
