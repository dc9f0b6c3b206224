"""The sweep CLI (spec file and depth-sweep shortcut) and the cache next to the database,
with real tiny trials run in-process."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml

from transferlab.cli import main
from transferlab.sweep import cache as sweep_cache
from transferlab.sweep import foundation, load_results, run_sweep

TARGET = "digits:classes=5-9:size=16"
TRAIN = {"epochs": 1, "batch_size": 64, "device": "cpu"}


@pytest.fixture(autouse=True)
def one_thread():
    """Real trials in this process: one torch thread is faster on a shared machine (and
    what each sweep worker uses)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from transferlab.api import pretrain_checkpoint

    path = tmp_path_factory.mktemp("src") / "src"
    pretrain_checkpoint("digits:classes=0-4:size=16", str(path),
                        arch_kwargs={"width": 4, "fc_width": 16}, train={"epochs": 0})
    return str(path) + ".safetensors"


def test_depth_sweep_shortcut(ckpt, tmp_path, capsys):
    db = tmp_path / "d.sqlite"
    argv = ["sweep", "--source", ckpt, "--target", TARGET, "--protocols", "freeze,finetune",
            "--depths", "1,2", "--seeds", "2", "--epochs", "1", "--db", str(db),
            "--workers", "1", "--quiet", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["trials"], summary["done"], summary["failed"]) == (6, 6, 0)
    df = load_results(db)
    assert sorted(df["protocol_spec"]) == sorted(["freeze:1", "freeze:2", "finetune"] * 2)
    assert set(df["train.epochs"]) == {1} and set(df["seed"]) == {0, 1}
    # The same command again finds everything done and runs nothing.
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 6


def test_depth_sweep_shortcut_all_depths_count(ckpt, tmp_path, capsys):
    db = tmp_path / "d.sqlite"
    argv = ["sweep", "--source", ckpt, "--target", f"{TARGET}:per_class=5", "--protocols",
            "freeze,reinit", "--epochs", "1", "--db", str(db), "--workers", "1", "--quiet"]
    assert main(argv) == 0
    assert len(load_results(db)) == 2 * 6  # depths 1..L-1 of a 7-block convnet, 1 seed


def test_cli_bad_spec_exit_2_and_db_untouched(ckpt, tmp_path, capsys):
    db = tmp_path / "d.sqlite"
    good = {"name": "g", "target": TARGET, "sources": {"a": {"checkpoint": ckpt}},
            "axes": {"protocol": ["freeze:1"]}, "train": TRAIN}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    assert main(["sweep", str(tmp_path / "good.yaml"), "--db", str(db), "--quiet"]) == 0
    before = db.read_bytes()
    bad = {**good, "axes": {"protocol": ["freeze"], "depth": [1, 2, 9]}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["sweep", str(tmp_path / "bad.yaml"), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "axes.depth[2]: 9 is beyond the model's 7 blocks" in err
    assert db.read_bytes() == before


def test_sources_pretrained_once_per_seed_and_cached(tmp_path, monkeypatch):
    calls = []
    real = foundation.pretrain_checkpoint

    def counting(**kw):
        calls.append(kw["seed"])
        return real(**kw)

    monkeypatch.setattr(foundation, "pretrain_checkpoint", counting)
    spec = {"name": "p", "target": TARGET,
            "sources": {"rand": {"pretrain": {"task": "digits:classes=0-4:size=16",
                                              "arch_kwargs": {"width": 4, "fc_width": 16},
                                              "seed": 10},
                                 "per_seed": True, "epochs": 0}},
            "axes": {"protocol": ["freeze:2"], "seed": 2}, "train": TRAIN}
    db = tmp_path / "p.sqlite"
    df = run_sweep(spec, db, workers=1, progress=False)
    assert sorted(calls) == [10, 11]  # seed = pretrain.seed + trial seed
    assert df["source_sha256"].nunique() == 2  # a different random source per seed
    assert len(list((sweep_cache.cache_root(db) / "sources").iterdir())) == 2
    assert list(sweep_cache.features_dir(db).glob("*.safetensors")), "features not cached"
    spec["axes"]["lr"] = [0.05, 0.1]  # new trials, same sources: nothing is pretrained again
    df = run_sweep(spec, db, workers=1, progress=False)
    assert sorted(calls) == [10, 11] and len(df) == 4


def test_cache_limit_zero_disables_feature_cache(ckpt, tmp_path):
    spec = {"name": "c", "target": TARGET, "sources": {"a": {"checkpoint": ckpt}},
            "axes": {"protocol": ["freeze:3"]}, "train": TRAIN}
    db = tmp_path / "c.sqlite"
    run_sweep(spec, db, workers=1, progress=False, cache_limit_gb=0)
    assert not list(sweep_cache.features_dir(db).glob("*.safetensors"))


def test_prune_features_removes_least_recently_used(tmp_path):
    now = time.time()
    for i, size in enumerate([100, 200, 300, 400]):  # f0 oldest ... f3 newest
        p = tmp_path / f"f{i}.safetensors"
        p.write_bytes(b"x" * size)
        os.utime(p, (now - 100 + i, now - 100 + i))
    assert sweep_cache.prune_features(tmp_path, 750) == 300  # f0 + f1 go: 1000 -> 700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f2.safetensors", "f3.safetensors"]
    assert sweep_cache.prune_features(tmp_path, None) == 0
    assert sweep_cache.prune_features(tmp_path, 0) == 700 and not list(tmp_path.iterdir())
