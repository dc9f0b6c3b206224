"""Each trial records what its numbers were computed in (api.effective_numerics): bf16
autocast only on CUDA, channels_last as configured; on CUDA the bf16 default leaves the
accuracy where float32 puts it (gpu lane)."""

from __future__ import annotations

import pytest
import torch

from transferlab.api import effective_numerics, pretrain, transfer
from transferlab.data import make_task
from transferlab.train import TrainConfig


def test_bf16_is_recorded_only_where_it_applies():
    cfg = TrainConfig()
    assert cfg.bf16 and cfg.channels_last  # the defaults: bf16 on CUDA, NHWC everywhere
    assert effective_numerics(cfg, torch.device("cpu")) == {
        "precision": "float32", "memory_format": "channels_last"}
    assert effective_numerics(cfg, torch.device("cuda", 0))["precision"] == "bf16-autocast"
    off = TrainConfig(bf16=False, channels_last=False)
    assert effective_numerics(off, torch.device("cuda", 0)) == {
        "precision": "float32", "memory_format": "contiguous"}


def test_trial_metrics_carry_them(one_thread):
    task = make_task("digits:classes=0-4:size=8")
    train = {"epochs": 1, "batch_size": 64, "device": "cpu", "channels_last": False}
    res = pretrain(task, arch="convnet", train=train, progress=False, width=4, fc_width=8)
    assert res.metrics["precision"] == "float32"
    assert res.metrics["memory_format"] == "contiguous"


@pytest.mark.gpu
def test_bf16_default_keeps_accuracy_on_cuda():
    src_task = make_task("digits:classes=0-4:size=16")
    tgt = make_task("digits:classes=5-9:size=16")
    train = {"epochs": 6, "batch_size": 64, "device": "cuda"}
    src = pretrain(src_task, train=train, progress=False, width=8, fc_width=32).model
    accs = {}
    for bf16 in (True, False):
        res = transfer(src, tgt, "finetune", {**train, "bf16": bf16}, seed=0, progress=False)
        accs[bf16] = res.metrics["test_acc"]
        assert res.metrics["precision"] == ("bf16-autocast" if bf16 else "float32")
    # 599 test digits of 5 classes: 3 points is ~2 standard errors of a paired difference
    assert abs(accs[True] - accs[False]) <= 0.03, accs
