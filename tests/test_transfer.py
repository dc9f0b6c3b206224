"""End to end through the public API: pretrain, transfer, caching, determinism, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from transferlab.api import pretrain, run_trial, transfer
from transferlab.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
from transferlab.data import make_task
from transferlab.errors import UserError
from transferlab.train import TrainConfig

ARCH = {"width": 4, "fc_width": 16}
FAST = {"epochs": 2, "batch_size": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def tasks():
    return make_task("digits:classes=0-4:size=16"), make_task("digits:classes=5-9:size=16")


@pytest.fixture(scope="module")
def source(tasks):
    return pretrain(tasks[0], "convnet", {**FAST, "epochs": 4}, seed=0, progress=False,
                    **ARCH).model


def test_pretrain_learns_and_transfer_beats_chance(source, tasks):
    for protocol in ["linear-probe", "freeze:3", "reinit+:2", "finetune"]:
        res = transfer(source, tasks[1], protocol, FAST, seed=0, progress=False)
        assert res.metrics["test_acc"] > 0.5, protocol  # chance is 0.2
        assert res.metrics["outcome"] == "ok"


def test_transfer_does_not_modify_the_source(source, tasks):
    before = {k: v.clone() for k, v in source.state_dict().items()}
    transfer(source, tasks[1], "finetune", FAST, seed=0, progress=False)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())


@pytest.mark.parametrize("protocol", ["freeze:3", "reinit:5", "head-only"])
def test_cached_and_uncached_runs_give_the_same_numbers(source, tasks, protocol):
    a = transfer(source, tasks[1], protocol, FAST, seed=3, progress=False)
    b = transfer(source, tasks[1], protocol, FAST, seed=3, progress=False, use_cache=False)
    assert a.metrics["cached_prefix"] > 0 and b.metrics["cached_prefix"] == 0
    assert a.metrics["test_acc"] == pytest.approx(b.metrics["test_acc"], abs=0.005)
    assert a.metrics["test_nll"] == pytest.approx(b.metrics["test_nll"], rel=1e-3)
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=1e-4, atol=1e-5)


def test_same_seed_same_numbers_and_other_seed_differs(source, tasks):
    runs = [transfer(source, tasks[1], "reinit+:2", FAST, seed=s, progress=False).metrics
            for s in (7, 7, 8)]
    assert runs[0]["test_nll"] == runs[1]["test_nll"]
    assert runs[0]["test_nll"] != runs[2]["test_nll"]


def test_linear_probe_matches_sklearn_logistic_regression(source, tasks):
    from sklearn.linear_model import LogisticRegression

    from transferlab.models.standardize import feature_scale

    res = transfer(source, tasks[1], "linear-probe", {**FAST, "l2": 1e-2}, progress=False)
    t = tasks[1]
    with torch.no_grad():  # the final fit reads every labelled example: train + val
        f_tr = res.model.features(t.x_train, 7).flatten(1)
        f_all = res.model.features(torch.cat([t.x_train, t.x_val]), 7).flatten(1)
    # The probe fits standardised features x / s (s: the train split's per-feature spread)
    # and writes W / s into the head: the penalty is on W, the weights of x / s.
    s = feature_scale(f_tr).pow(2).mean().sqrt().double().item()  # global
    feats = f_all.double().numpy() / s
    n = len(feats)
    # sklearn minimises C * sum(CE) + ||W||^2 / 2, ours mean(CE) + l2 / 2 ||W||^2: C = 1/(n l2)
    ref = LogisticRegression(C=1 / (n * 1e-2), max_iter=5000, tol=1e-10).fit(
        feats, torch.cat([t.y_train, t.y_val]).numpy())
    ours = res.model.head.weight.detach().double().numpy() * s
    # Softmax weights are identifiable only up to a shared shift across classes.
    ours, theirs = ours - ours.mean(0), ref.coef_ - ref.coef_.mean(0)
    assert abs(ours - theirs).max() < 2e-3 * max(1.0, abs(theirs).max())


def test_diverging_run_is_recorded_not_raised(source, tasks):
    res = transfer(source, tasks[1], "finetune", {**FAST, "lr": 1e12, "lr_mult": 1.0},
                   seed=0, progress=False)
    assert res.metrics["outcome"] == "diverged"
    assert "lower the learning rate" in res.metrics["reason"]


def test_early_stopping_restores_the_best_epoch(source, tasks):
    res = transfer(source, tasks[1], "reinit:3", {**FAST, "epochs": 8, "patience": 1},
                   seed=0, progress=False)
    hist = [h["val_acc"] for h in res.history]
    best = max(range(len(hist)), key=lambda i: (hist[i], -i))
    assert res.metrics["best_epoch"] == best + 1
    assert res.metrics["val_acc"] == pytest.approx(hist[best])


def test_checkpoint_round_trip_and_frozen_tensors_bit_identical(source, tasks, tmp_path):
    src_path = save_checkpoint(tmp_path / "src", source, {"task": "digits:classes=0-4"})
    res = transfer(source, tasks[1], "freeze:4", FAST, seed=0, progress=False)
    out = save_checkpoint(tmp_path / "dst", res.model, {"task": str(tasks[1].spec)})
    a, b = load_file(str(src_path)), load_file(str(out))
    for k in a:
        if k.startswith("blocks.") and int(k.split(".")[1]) < 4:
            assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("blocks.5"))
    model, meta = load_checkpoint(tmp_path / "dst.safetensors")
    assert meta["blocks"] == model.block_names and meta["arch"]["arch"] == "convnet"
    assert meta["provenance"]["versions"]["torch"] == torch.__version__
    x = tasks[1].x_test[:5]
    torch.testing.assert_close(model.eval()(x), res.model.eval()(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_run_trial_from_a_config_dict(source, tasks, tmp_path):
    path = save_checkpoint(tmp_path / "src", source, {"task": "digits:classes=0-4"})
    cfg = {"source": str(path), "task": "digits:classes=5-9:size=16", "protocol": "freeze:5",
           "seed": 0, "train": FAST, "source_sha256": checkpoint_sha256(path)}
    m1 = run_trial(cfg, feature_cache_dir=str(tmp_path / "feats"))
    m2 = run_trial(cfg, feature_cache_dir=str(tmp_path / "feats"))  # from the disk cache
    assert len(list((tmp_path / "feats").glob("*.safetensors"))) == 1
    assert m1["test_acc"] == m2["test_acc"] and m1["test_nll"] == m2["test_nll"]
    with pytest.raises(UserError, match=r"trial config keys \['bogus'\] are invalid"):
        run_trial({**cfg, "bogus": 1})


def test_train_config_validation():
    with pytest.raises(UserError, match=r"optimizer='adam' is invalid: allowed is 'sgd' or"):
        TrainConfig(optimizer="adam")
    with pytest.raises(UserError, match=r"train config keys \['epoch'\] are invalid"):
        TrainConfig.from_dict({"epoch": 3})
    assert json.loads(json.dumps(TrainConfig().to_dict()))["epochs"] == 10
    assert not math.isnan(TrainConfig().lr)


@pytest.mark.parametrize("protocol", ["l2sp", "bn-adapt", "norm-only", "finetune-frozen-stats"])
def test_new_protocols_transfer_end_to_end(source, tasks, protocol):
    res = transfer(source, tasks[1], protocol, FAST, seed=0, progress=False)
    # chance is 0.2; 14 SGD steps with frozen statistics reach about head-only's 0.35
    assert res.metrics["outcome"] == "ok" and res.metrics["test_acc"] > 0.3, protocol
    # lr_mult=None is resolved into the recorded config: the value that ran.
    assert res.config["train"]["lr_mult"] == (0.1 if protocol.startswith("finetune") else 1.0)
