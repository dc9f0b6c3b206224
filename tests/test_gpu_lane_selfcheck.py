"""The CUDA lane's code path, checked CPU against CPU on any machine (the lane itself,
tests/test_gpu_lane.py, needs a GPU): the cases run, give the keys the lane compares, and
are deterministic where the lane demands bit equality."""

from __future__ import annotations

import pytest
import torch

import gpu_lane_cases as lane


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("lane-selfcheck")


def test_every_registered_protocol_is_in_the_lane():
    from transferlab.protocols import get_protocol, protocol_names

    names = lane.registered_protocols()
    assert len(names) == len(protocol_names()) >= 20
    for n in names:
        get_protocol(n)  # each resolves (depth 2 where one is needed)


@pytest.mark.parametrize("protocol", ["reinit+:2", "probe:2", "layer-mix", "continue"])
def test_plan_case_is_deterministic(tmp, protocol, one_thread):
    a, b = lane.case_plan("cpu", tmp, protocol), lane.case_plan("cpu", tmp, protocol)
    lane.compare(a, b, {"": 0})
    assert any(k.startswith("head") for k in a)


def test_plan_case_would_catch_a_device_dependent_init(tmp, one_thread, monkeypatch):
    """Were the init drawn from the global RNG (as a CUDA draw would be), two runs differ:
    the lane's bit-equality check has teeth."""
    from transferlab.models import init

    a = lane.case_plan("cpu", tmp, "reinit:2")
    monkeypatch.setattr(init, "check_cpu_generator", lambda g: None)
    real = init.seeded_
    monkeypatch.setattr(init, "seeded_", lambda t, fn, g=None, *a, **k: real(t, fn, None,
                                                                              *a, **k))
    b = lane.case_plan("cpu", tmp, "reinit:2")
    with pytest.raises(AssertionError):
        lane.compare(a, b, {"": 0})


def test_transfer_pretrain_and_compare(tmp, one_thread):
    pre = lane.case_pretrain("cpu", tmp)
    lane.compare(pre, lane.case_pretrain("cpu", tmp), {"init.": 0, "test_acc": 0.06})
    for protocol in ("freeze:2", "linear-probe", "bn-adapt"):
        a = lane.case_transfer("cpu", tmp, protocol)
        assert a["outcome"] == "ok" and a["test_acc"] > 0.4, (protocol, a)
        lane.compare(a, dict(a), {"test_acc": 0.06})
    with pytest.raises(AssertionError):
        lane.compare({"test_acc": 0.5}, {"test_acc": 0.6}, {"test_acc": 0.06})


def test_similarity_and_rank_cases(tmp, one_thread):
    s = lane.case_similarity("cpu", tmp)
    assert s["cka"].shape == (7, 7) and bool(torch.isfinite(s["cka"]).all())
    r = lane.case_rank("cpu", tmp)
    assert len(r) >= 6 and all(v == v for v in r.values())


def test_study_comparison_rules():
    ok = {"failures": None, "cell.a": 0.8, "cell.b": 0.5}
    lane.compare_study(ok, {"failures": None, "cell.a": 0.75, "cell.b": 0.55})
    with pytest.raises(AssertionError):  # a failed trial on one side
        lane.compare_study(ok, {**ok, "failures": "1 of 4 trials failed: ..."})
    with pytest.raises(AssertionError):  # a cell at chance on CUDA
        lane.compare_study(ok, {**ok, "cell.a": 0.2})


def _tiny_resnet(act: str, pool: str):
    """A stand-in with a torchvision (or timm) ResNet's attribute names: what the adapters
    wrap, small enough for a CPU test."""
    from torch import nn

    def stage(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                             nn.ReLU())

    net = nn.Module()
    net.conv1, net.bn1, net.maxpool = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), \
        nn.MaxPool2d(2)
    setattr(net, act, nn.ReLU())
    net.layer1, net.layer2, net.layer3, net.layer4 = stage(4, 4), stage(4, 8), stage(8, 8), \
        stage(8, 8)
    setattr(net, pool, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    net.fc = nn.Linear(8, 1000)
    return net


@pytest.mark.parametrize("lib", ["torchvision", "timm"])
def test_adapter_case_runs_with_stand_in_libraries(tmp, lib, monkeypatch, one_thread):
    """torchvision and timm do not import on this CPU machine: the lane's adapter case
    runs here against stand-in modules with their APIs (get_model / create_model)."""
    import sys
    import types

    fake = types.ModuleType(lib)
    if lib == "torchvision":
        fake.models = types.SimpleNamespace(
            get_model=lambda name, weights=None: _tiny_resnet("relu", "avgpool"))
    else:
        fake.create_model = lambda name, pretrained=False: _tiny_resnet("act1", "global_pool")
    monkeypatch.setitem(sys.modules, lib, fake)
    a = lane.adapter_transfer("cpu", tmp, lib)
    b = lane.adapter_transfer("cpu", tmp, lib)
    lane.compare(a, b, {"plan.": 0, "acc.": 0.1})
    assert a["outcome.freeze:3"] == a["outcome.finetune"] == "ok"
    assert any(k.startswith("plan.head") for k in a)
