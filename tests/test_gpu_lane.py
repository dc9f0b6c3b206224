"""The CUDA lane: each feature run on ``cuda`` and compared with the same run on the CPU.

Run on a machine with a GPU: ``python -m pytest -m gpu tests/test_gpu_lane.py`` (every test
here is marked ``gpu`` and skips, with its reason, where CUDA is not visible). The cases
and the tolerance of each, with why, are in ``tests/gpu_lane_cases.py``;
``tests/test_gpu_lane_selfcheck.py`` runs a few of them CPU against CPU on any machine.
Budget: tiny tasks (digits at 8 px), 1-4 epochs, one seed; about two minutes on an H200.
"""

from __future__ import annotations

import pytest
import torch

import gpu_lane_cases as lane

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu-lane")


def _both(fn, tmp, *args):
    """``fn`` on cuda, then on cpu (what each gave is written next to the outputs)."""
    got = {d: fn(d, tmp, *args) for d in ("cuda", "cpu")}
    for d, v in got.items():
        lane.write_json(tmp / f"{fn.__name__}-{'-'.join(map(str, args))}-{d}.json", v)
    return got["cuda"], got["cpu"]


def test_seeded_init_is_bit_equal_on_cuda():
    """The init helper's promise, on the real device (also in test_init_helper)."""
    from transferlab.models.base import reset_parameters

    mods = {}
    for d in ("cpu", "cuda"):
        m = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Linear(4, 2),
                                torch.nn.Embedding(5, 4), torch.nn.MultiheadAttention(4, 2))
        reset_parameters(m.to(d), torch.Generator().manual_seed(5))
        mods[d] = [p.detach().cpu() for p in m.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(mods["cpu"], mods["cuda"]))


def test_pretrain(tmp):
    cuda, cpu = _both(lane.case_pretrain, tmp)
    lane.compare(cuda, cpu, {"init.": 0, "test_acc": 0.06})
    assert cuda["outcome"] == "ok" and cuda["test_acc"] > 0.5  # chance is 0.2


@pytest.mark.parametrize("protocol", lane.registered_protocols())
def test_every_protocol_plans_bit_equal_weights(tmp, protocol):
    cuda, cpu = _both(lane.case_plan, tmp, protocol)
    lane.compare(cuda, cpu, {"": 0})


@pytest.mark.parametrize("protocol", lane.registered_protocols())
def test_every_protocol_transfers(tmp, protocol):
    cuda, cpu = _both(lane.case_transfer, tmp, protocol)
    lane.compare(cuda, cpu, {"test_acc": 0.06, "val_acc": 0.08, "depth": 0,
                             "trainable_params": 0})
    assert cuda["outcome"] == "ok"


def test_bf16_autocast_runs(tmp):
    """The default CUDA path (bf16 autocast): it runs and learns; within 0.1 of float32 on
    the CPU (bf16 keeps 8 bits of mantissa in the forward pass)."""
    from transferlab.api import transfer
    from transferlab.data import make_task

    task = make_task(lane.TGT_TASK)
    acc = {d: transfer(lane.source("cpu"), task, "finetune",
                       {**lane.TRAIN, "bf16": d == "cuda", "device": d}, progress=False)
           .metrics for d in ("cuda", "cpu")}
    assert acc["cuda"]["outcome"] == "ok"
    assert abs(acc["cuda"]["test_acc"] - acc["cpu"]["test_acc"]) <= 0.1, acc


def test_default_device_auto_is_cuda_here(tmp):
    from transferlab.train import TrainConfig

    assert TrainConfig().resolved_device().type == "cuda"


def test_sweep_local_backend(tmp):
    cuda, cpu = _both(lane.case_sweep, tmp)
    lane.compare(cuda, cpu, {"acc.": 0.06})


def test_similarity(tmp):
    cuda, cpu = _both(lane.case_similarity, tmp)
    lane.compare(cuda, cpu, {"cka": 1e-4})


def test_rank(tmp):
    cuda, cpu = _both(lane.case_rank, tmp)
    assert cuda.keys() == cpu.keys() and len(cuda) >= 6
    for k in cuda:
        assert cuda[k] == pytest.approx(cpu[k], rel=1e-3, abs=1e-4), k


def test_depth(tmp):
    cuda, cpu = _both(lane.case_depth, tmp)
    lane.compare(cuda, cpu, {"val_acc": 0.06})


def test_advise_with_verify(tmp):
    cuda, cpu = _both(lane.case_advise, tmp)
    lane.compare(cuda, cpu, {"winner_val_acc": 0.1})


def test_ensemble_and_add_member(tmp):
    cuda, cpu = _both(lane.case_ensemble, tmp)
    lane.compare(cuda, cpu, {"acc.": 0.08})
    assert cuda["acc.independent"] > 0.4  # learnt (chance 0.2): the comparison has teeth


@pytest.mark.parametrize("name", list(lane.STUDIES))
def test_study_smallest_budget(tmp, name):
    cuda, cpu = _both(lane.STUDIES[name], tmp)
    lane.compare_study(cuda, cpu)


@pytest.mark.parametrize("lib", ["torchvision", "timm"])
def test_adapter_transfers(tmp, lib):
    cuda, cpu = _both(lane.adapter_transfer, tmp, lib)
    lane.compare(cuda, cpu, {"plan.": 0, "acc.": 0.1})
    assert cuda["outcome.freeze:3"] == cuda["outcome.finetune"] == "ok"
