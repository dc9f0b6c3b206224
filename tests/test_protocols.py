"""Protocols: exactly the intended parameters and BatchNorm statistics change."""

from __future__ import annotations

import copy

import pytest
import torch

from transferlab.errors import UserError
from transferlab.models import build_model
from transferlab.protocols import get_protocol, make_plan, protocol_names
from transferlab.train import TrainConfig, fit

L = 7  # convnet blocks


def _source() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("convnet", num_classes=4, in_channels=1, image_size=8, width=4,
                        fc_width=8)
    # Give BatchNorm non-trivial statistics, as a pretrained source would have.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 8, 8))
    return model


def _train_few_steps(protocol: str, steps_data: int = 48):
    src = _source()
    model = copy.deepcopy(src)
    plan = make_plan(get_protocol(protocol).config, model, num_classes=3,
                     generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(steps_data, 1, 8, 8, generator=g), torch.randint(0, 3, (steps_data,), generator=g)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, weight_decay=1e-3, device="cpu")
    fit(model, x, y, x[:8], y[:8], cfg, plan.groups, frozen_modules=plan.frozen_modules,
        generator=g, progress=False)
    return src, model, plan


def _changed(src, model) -> set[str]:
    a, b = src.state_dict(), model.state_dict()
    return {k for k in a if not k.startswith("head.") and k in b
            and (a[k].shape != b[k].shape or not torch.equal(a[k], b[k]))}


def _keys(model, blocks, suffixes=None):
    out = set()
    for k in model.state_dict():
        if not k.startswith("blocks."):
            continue
        i = int(k.split(".")[1])
        if i in blocks and (suffixes is None or k.endswith(suffixes)):
            if k.endswith("num_batches_tracked"):
                continue
            out.add(k)
    return out


def _drop_counters(keys):
    return {k for k in keys if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("n", [0, 3, L])
def test_freeze_n_changes_exactly_the_blocks_above_n(n):
    src, model, plan = _train_few_steps(f"freeze:{n}")
    assert _drop_counters(_changed(src, model)) == _keys(src, set(range(n, L)))
    assert plan.frozen_prefix == n


@pytest.mark.parametrize("plus", [False, True])
def test_reinit_n_reinitialises_above_and_freezes_or_tunes_below(plus):
    n = 2
    src, model, plan = _train_few_steps(f"reinit{'+' if plus else ''}:{n}")
    expected = _keys(src, set(range(n, L)) | (set(range(n)) if plus else set()))
    assert _drop_counters(_changed(src, model)) == expected
    assert plan.reinitialised == [f"conv{i}" for i in range(3, 6)] + ["fc6", "fc7"]
    assert plan.frozen_prefix == (0 if plus else n)


def test_bn_only_moves_bn_affine_and_running_stats_only():
    src, model, _ = _train_few_steps("bn-only")
    bn_suffixes = (".1.weight", ".1.bias", ".1.running_mean", ".1.running_var")
    conv_blocks = set(range(5))
    assert _drop_counters(_changed(src, model)) == _keys(src, conv_blocks, bn_suffixes)


def test_conv_only_moves_weights_and_bn_statistics_but_not_bn_affine():
    src, model, _ = _train_few_steps("conv-only")
    changed = _drop_counters(_changed(src, model))
    expected = _keys(src, set(range(5)), (".0.weight", ".1.running_mean", ".1.running_var")) \
        | _keys(src, {5}, (".1.weight",)) | _keys(src, {6}, (".0.weight",))
    assert changed == expected


@pytest.mark.parametrize("name", ["head-only", "linear-probe"])
def test_head_protocols_freeze_every_block(name):
    model = _source()
    plan = make_plan(get_protocol(name).config, model, num_classes=3)
    assert plan.frozen_prefix == L
    assert plan.trainable_names() == {"head.weight", "head.bias"}


def test_finetune_uses_lr_mult_for_pretrained_blocks_and_layer_decay():
    model = _source()
    plan = make_plan(get_protocol("finetune").config, model, 3, layer_decay=0.5)
    scales = {g["name"]: g["lr_scale"] for g in plan.groups}
    assert scales["head"] == 1.0
    assert scales["fc7"] == pytest.approx(0.1)
    assert scales["conv1"] == pytest.approx(0.1 * 0.5 ** 6)


def test_reinit_plus_trains_reinitialised_blocks_at_full_lr():
    plan = make_plan(get_protocol("reinit+:2").config, _source(), 3, lr_mult=0.1)
    scales = {g["name"]: g["lr_scale"] for g in plan.groups}
    assert scales["conv1"] == pytest.approx(0.1) and scales["conv3"] == 1.0


def test_reinit_is_seeded_independently_of_global_rng():
    a = make_plan(get_protocol("scratch").config, _source(), 3,
                  generator=torch.Generator().manual_seed(5)).model
    torch.randn(100)  # consume global RNG
    b = make_plan(get_protocol("scratch").config, _source(), 3,
                  generator=torch.Generator().manual_seed(5)).model
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_every_preset_is_registered():
    names = set(protocol_names())
    assert {"linear-probe", "freeze:n", "reinit:n", "reinit+:n", "finetune", "bn-only",
            "conv-only", "head-only", "scratch"} <= names


@pytest.mark.parametrize("bad, match", [
    ("freez:3", r"protocol='freez:3' is invalid: allowed are .*freeze:n"),
    ("freeze", r"freeze needs a depth, as in 'freeze:3'"),
    ("finetune:2", r"finetune takes no depth"),
])
def test_bad_protocol_names(bad, match):
    with pytest.raises(UserError, match=match):
        get_protocol(bad)


def test_depth_by_block_name():
    plan = make_plan(get_protocol("freeze:conv3").config, _source(), 3)
    assert plan.depth == 3 and plan.frozen_prefix == 3
    with pytest.raises(UserError, match=r"block='conv9' is invalid: allowed is one of this "
                                        r"model's blocks: conv1, conv2, .*fc7"):
        make_plan(get_protocol("reinit:conv9").config, _source(), 3)


def test_depth_beyond_model_is_an_error():
    with pytest.raises(UserError, match=r"depth=9 is invalid: allowed is 0\.\.7 for this model"):
        make_plan(get_protocol("freeze:9").config, _source(), 3)
