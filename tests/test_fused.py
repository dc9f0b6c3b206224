"""The fused engine (transferlab.train.fused) against separate ``transfer`` runs.

Tolerance: fused trials run the same float32 arithmetic as separate runs, but vmap turns
T convolutions into one grouped convolution and T matmuls into one batched matmul, which
sum in another order; those ~1e-7 relative differences grow over a few SGD steps to
~1e-6. Weights are compared at rtol=1e-4, atol=1e-5, losses and NLLs at rel=1e-4, and
accuracies to one test example (a near-tie may flip).
"""

from __future__ import annotations

import math

import pytest
import torch

from transferlab.api import pretrain, transfer
from transferlab.data import make_task
from transferlab.errors import UserError
from transferlab.protocols import get_protocol
from transferlab.train.fused import FusedTrial, fit_fused

TRAIN = {"epochs": 3, "lr": 0.05, "device": "cpu", "batch_size": 16}


@pytest.fixture(scope="module")
def source():
    return pretrain(make_task("digits:classes=0-4:size=8"), arch="convnet",
                    train={"epochs": 3, "lr": 0.05, "device": "cpu"}, seed=0, progress=False,
                    width=4, fc_width=16).model


@pytest.fixture(scope="module")
def task():
    return make_task("digits:classes=5-9:per_class=20:size=8")  # 15 train + 5 val per class


def _fused(source, task, protocol, trials, train=TRAIN, **kw):
    return fit_fused(source, get_protocol(protocol), trials, task.x_train, task.y_train,
                     task.x_val, task.y_val, task.x_test, task.y_test, task.num_classes,
                     train, **kw)


def _same(fused, ref, n_test: int) -> None:
    """A fused trial equals its separate ``transfer`` run (to float32 rounding)."""
    state = ref.model.state_dict()
    assert list(fused.state) == list(state)
    for k, v in state.items():
        torch.testing.assert_close(fused.state[k].to(v.dtype), v, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, k=k: f"{k}: {m}")
    m, r = fused.metrics, ref.metrics
    assert abs(m["test_acc"] - r["test_acc"]) <= 1 / n_test + 1e-9
    assert m["test_nll"] == pytest.approx(r["test_nll"], rel=1e-4)
    for key in ("best_epoch", "epochs_run", "outcome", "trainable_params", "frozen_params",
                "depth"):
        assert m[key] == r[key], key
    assert [h["epoch"] for h in fused.history] == [h["epoch"] for h in ref.history]
    for a, b in zip(fused.history, ref.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert abs(a["val_acc"] - b["val_acc"]) <= 1 / 25 + 1e-9 or \
            math.isnan(a["val_acc"]) and math.isnan(b["val_acc"])


def _ref(source, task, protocol, seed=0, **train):
    return transfer(source, task, protocol, train={**TRAIN, **train}, seed=seed,
                    progress=False)


def test_seeds_and_learning_rates_equal_separate_runs(source, task):
    trials = [FusedTrial(seed=0), FusedTrial(seed=1), FusedTrial(seed=0, lr=0.01),
              FusedTrial(seed=2, lr_mult=0.5)]
    res = _fused(source, task, "finetune", trials)
    refs = [_ref(source, task, "finetune", 0), _ref(source, task, "finetune", 1),
            _ref(source, task, "finetune", 0, lr=0.01),
            _ref(source, task, "finetune", 2, lr_mult=0.5)]
    for r, ref in zip(res, refs):
        _same(r, ref, len(task.y_test))
    assert refs[0].metrics["test_acc"] > 0.4  # the source transfers: not a chance-level check
    # Seeds give different heads, lrs different weights: the comparison is not vacuous.
    assert not torch.equal(res[0].state["head.weight"], res[1].state["head.weight"])
    assert not torch.allclose(res[0].state["blocks.0.0.weight"],
                              res[2].state["blocks.0.0.weight"])
    assert res[3].config["train"]["lr_mult"] == 0.5 and res[0].config["train"]["lr_mult"] == 0.1


def test_depths_in_one_job_equal_separate_runs(source, task):
    """freeze:0..5 together: per-trial lr masks and per-trial BatchNorm modes."""
    depths = [0, 2, 4, 5]
    trials = [FusedTrial(seed=3, protocol=get_protocol(f"freeze:{d}")) for d in depths]
    res = _fused(source, task, "freeze:2", trials)
    for d, r in zip(depths, res):
        _same(r, _ref(source, task, f"freeze:{d}", 3), len(task.y_test))
        assert r.metrics["cached_prefix"] == 0  # the shortest prefix (freeze:0) is shared
    # A frozen block keeps its pretrained weights and statistics in that trial only.
    src = source.state_dict()
    assert torch.equal(res[2].state["blocks.1.1.running_mean"], src["blocks.1.1.running_mean"])
    assert not torch.equal(res[0].state["blocks.1.1.running_mean"],
                           src["blocks.1.1.running_mean"])


@pytest.mark.parametrize("protocol", ["bn-only", "freeze-frozen-stats:1"])
def test_bn_only_and_frozen_stats_equal_separate_runs(source, task, protocol):
    res = _fused(source, task, protocol, [FusedTrial(seed=0), FusedTrial(seed=5, lr=0.1)])
    for r, (seed, lr) in zip(res, [(0, 0.05), (5, 0.1)]):
        _same(r, _ref(source, task, protocol, seed, lr=lr), len(task.y_test))


def test_episodes_equal_separate_runs(source):
    """Per-trial data: each trial trains on its own support set (few-shot episodes)."""
    tasks = [make_task(f"digits:classes=5-9:per_class=8:size=8:episode={e}")
             for e in range(3)]
    res = fit_fused(source, get_protocol("freeze:3"), [FusedTrial(seed=0)] * 3,
                    torch.stack([t.x_train for t in tasks]),
                    torch.stack([t.y_train for t in tasks]),
                    torch.stack([t.x_val for t in tasks]), torch.stack([t.y_val for t in tasks]),
                    tasks[0].x_test, tasks[0].y_test, 5, TRAIN)
    for r, t in zip(res, tasks):
        _same(r, _ref(source, t, "freeze:3", 0), len(t.y_test))
    assert not torch.equal(res[0].state["head.weight"], res[1].state["head.weight"])


def test_adamw_patience_and_clipping_equal_separate_runs(source, task):
    train = {**TRAIN, "optimizer": "adamw", "lr": 3e-3, "epochs": 6, "patience": 1,
             "max_grad_norm": 0.5}
    res = _fused(source, task, "freeze:1", [FusedTrial(seed=s) for s in range(3)], train)
    for s, r in enumerate(res):
        _same(r, transfer(source, task, "freeze:1", train=train, seed=s, progress=False),
              len(task.y_test))


def test_a_diverging_trial_does_not_poison_the_others(source, task):
    trials = [FusedTrial(seed=0), FusedTrial(seed=0, lr=1e12), FusedTrial(seed=1)]
    res = _fused(source, task, "finetune", trials)
    assert res[1].metrics["outcome"] == "diverged"
    assert "lower the learning rate (lr=1000000000000.0)" in res[1].metrics["reason"]
    assert res[1].metrics["reason"] == _ref(source, task, "finetune", 0, lr=1e12) \
        .metrics["reason"]
    for i, seed in ((0, 0), (2, 1)):
        assert res[i].metrics["outcome"] == "ok"
        assert all(math.isfinite(h["train_loss"]) for h in res[i].history)
        _same(res[i], _ref(source, task, "finetune", seed), len(task.y_test))


def test_no_validation_keeps_the_last_epoch_and_probs_match(source):
    t = make_task("digits:classes=5-9:per_class=3:size=8")  # k < 4: no validation split
    assert len(t.y_val) == 0
    res = fit_fused(source, get_protocol("head-only"), [FusedTrial(seed=1)], t.x_train,
                    t.y_train, t.x_val, t.y_val, t.x_test, t.y_test, 5, TRAIN, keep_probs=True)
    ref = _ref(source, t, "head-only", 1)
    _same(res[0], ref, len(t.y_test))
    assert res[0].metrics["best_epoch"] == 3 and math.isnan(res[0].metrics["val_acc"])
    torch.testing.assert_close(res[0].test_probs, ref.test_probs, rtol=1e-4, atol=1e-5)


def test_transfer_fused_returns_transfer_results(source, task):
    from transferlab.fused import fusable, transfer_fused

    out = transfer_fused(source, task, "freeze:2", [FusedTrial(seed=0), FusedTrial(seed=4)],
                         TRAIN)
    ref = _ref(source, task, "freeze:2", 4)
    assert out[1].config["task"] == ref.config["task"] and out[1].config["seed"] == 4
    with torch.no_grad():
        torch.testing.assert_close(out[1].model(task.x_test), ref.model(task.x_test),
                                   rtol=1e-4, atol=1e-4)
    assert fusable("freeze:2", TRAIN) == ""
    assert "own fit" in fusable("linear-probe", TRAIN)
    assert "augmentation" in fusable("finetune", {**TRAIN, "hflip": True})


def test_refuses_what_only_the_plain_path_runs(source, task):
    with pytest.raises(UserError, match=r"protocol='linear-probe'.*own fit.*transferlab.transfer"):
        _fused(source, task, "linear-probe", [FusedTrial()])
    with pytest.raises(UserError, match=r"protocol='l2sp'.*own loss_term"):
        _fused(source, task, "l2sp", [FusedTrial()])
    with pytest.raises(UserError, match=r"differ by depth only"):
        _fused(source, task, "freeze:1", [FusedTrial(), FusedTrial(protocol=get_protocol(
            "reinit:1"))])
    with pytest.raises(UserError, match=r"hflip=True is invalid for the fused engine"):
        _fused(source, task, "finetune", [FusedTrial()], {**TRAIN, "hflip": True})
    with pytest.raises(UserError, match=r"trials=\[\] is invalid"):
        _fused(source, task, "finetune", [])
    from transferlab.models import build_model

    drop = build_model("convnet", 5, in_channels=1, image_size=8, width=4, fc_width=8,
                       dropout=0.5)
    with pytest.raises(UserError, match=r"dropout p=0.5 in blocks\.\d+\.\d+ is invalid"):
        _fused(drop, task, "finetune", [FusedTrial()])
    _fused(drop, task, "freeze:7", [FusedTrial()])  # dropout in frozen blocks is off: fine


@pytest.mark.gpu
def test_cuda_trials_equal_cpu_trials_and_episodes_follow_the_data(source, task):
    """On CUDA (float32, no bf16) the fused trials equal the CPU ones; the few-shot
    wrapper trains where its data is, whatever device the source is on."""
    from transferlab.studies.fewshot.engine import train_episodes

    train = {**TRAIN, "device": "cuda", "bf16": False}
    cpu = _fused(source, task, "freeze:2", [FusedTrial(seed=0), FusedTrial(seed=1)])
    gpu = fit_fused(source, get_protocol("freeze:2"), [FusedTrial(seed=0), FusedTrial(seed=1)],
                    *[t.cuda() for t in (task.x_train, task.y_train, task.x_val, task.y_val,
                                         task.x_test, task.y_test)], 5, train)
    for a, b in zip(cpu, gpu):
        for k, v in a.state.items():
            assert b.state[k].device.type == "cpu"
            torch.testing.assert_close(b.state[k], v, rtol=1e-3, atol=1e-4)
    x = torch.stack([task.x_train[:10], task.x_train[10:20]]).cuda()
    y = torch.stack([task.y_train[:10], task.y_train[10:20]]).cuda()
    res = train_episodes(source.cpu(), "bn-only", x, y, task.x_test.cuda(),
                         task.y_test.cuda(), 5, {**train, "epochs": 2})
    assert len(res.test_acc) == 2 and all(0 <= a <= 1 for a in res.test_acc)


def test_one_source_per_trial_equals_separate_runs(source, task):
    """A sweep's per-seed sources: each trial's frozen prefix from its own source."""
    other = transfer(source, make_task("digits:classes=0-4:size=8"), "freeze:0",
                     train={**TRAIN, "epochs": 1}, seed=9, progress=False).model
    from transferlab.models.heads import replace_head

    replace_head(other, 5)  # same architecture as ``source`` (5 classes)
    res = fit_fused([source, other], get_protocol("freeze:3"), [FusedTrial(0), FusedTrial(1)],
                    task.x_train, task.y_train, task.x_val, task.y_val, task.x_test,
                    task.y_test, 5, TRAIN)
    _same(res[0], _ref(source, task, "freeze:3", 0), len(task.y_test))
    _same(res[1], _ref(other, task, "freeze:3", 1), len(task.y_test))
    assert not torch.equal(res[0].state["blocks.0.0.weight"], res[1].state["blocks.0.0.weight"])
