"""Weight analysis: known answers for relative change, cosine and BatchNorm shifts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferlab.analysis import compare_weights, infer_kind, parameter_kinds
from transferlab.errors import UserError
from transferlab.models import block_of_parameter, build_model


def _model(arch="convnet", seed=0):
    torch.manual_seed(seed)
    kw = {"width": 4, "fc_width": 8, "conv_stages": 3} if arch == "convnet" else {"width": 4}
    model = build_model(arch, num_classes=3, image_size=8, **kw)
    with torch.no_grad():  # non-zero BN statistics and betas, as after training
        for name, t in model.state_dict().items():
            if t.is_floating_point() and ("running" in name or "bn" in name or t.ndim == 1):
                t.add_(torch.rand(t.shape) + 0.5)
    return model


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _row(df, block, kind):
    sub = df[(df["block"] == block) & (df["kind"] == kind)]
    assert len(sub) == 1, (block, kind, df[["block", "kind"]])
    return sub.iloc[0]


def test_scaled_tensor_changes_by_exactly_one_untouched_by_zero():
    model = _model()
    before = _state(model)
    after = _state(model)
    after["blocks.1.0.weight"] *= 2  # conv2's conv weight
    df = compare_weights(before, after, block_of_parameter(model), parameter_kinds(model))
    scaled = _row(df, "conv2", "conv weight")
    assert scaled["rel_change"] == 1.0
    assert scaled["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert scaled["norm_after"] == pytest.approx(2 * scaled["norm_before"], rel=1e-12)
    others = df.drop(index=scaled.name)
    assert (others["rel_change"] == 0).all() and (others["abs_change"] == 0).all()
    np.testing.assert_allclose(others["cosine"], 1.0, atol=1e-12)


def test_batchnorm_shifts_and_kinds():
    model = _model()
    before, after = _state(model), _state(model)
    after["blocks.0.1.running_mean"] += 0.5   # conv1's BatchNorm
    after["blocks.0.1.running_var"] *= 3.0
    after["blocks.0.1.bias"] -= 0.25          # beta
    df = compare_weights(before, after, block_of_parameter(model), parameter_kinds(model))
    conv1 = df[df["block"] == "conv1"]
    assert list(conv1["kind"]) == ["conv weight", "bn gamma", "bn beta", "bn running_mean",
                                   "bn running_var"]
    mean = _row(df, "conv1", "bn running_mean")
    assert mean["mean_shift"] == pytest.approx(0.5) and mean["mean_abs_shift"] == pytest.approx(
        0.5)
    assert mean["abs_change"] == pytest.approx(0.5 * math.sqrt(4))  # 4 channels
    var = _row(df, "conv1", "bn running_var")
    assert var["rel_change"] == pytest.approx(2.0) and var["cosine"] == pytest.approx(1.0)
    beta = _row(df, "conv1", "bn beta")
    assert beta["mean_shift"] == pytest.approx(-0.25)
    assert _row(df, "conv1", "bn gamma")["rel_change"] == 0
    assert set(df["kind"]) == {"conv weight", "bn gamma", "bn beta", "bn running_mean",
                               "bn running_var", "linear weight", "bias"}
    assert "num_batches_tracked" not in " ".join(compare_weights(before, after,
                                                                 level="tensor")["name"])


def test_group_statistics_are_over_the_concatenated_tensors():
    """resnet's stage1 holds two conv weights A, B: scaling only A by 4 (exact in float32)
    gives ||dW|| / ||W0|| = 3 ||A|| / sqrt(||A||^2 + ||B||^2)."""
    model = _model("resnet")
    before, after = _state(model), _state(model)
    a_key, b_key = "blocks.1.0.conv1.weight", "blocks.1.0.conv2.weight"
    after[a_key] *= 4
    df = compare_weights(before, after, block_of_parameter(model), parameter_kinds(model))
    na, nb = before[a_key].double().norm().item(), before[b_key].double().norm().item()
    row = _row(df, "stage1", "conv weight")
    assert row["n_tensors"] == 2
    assert row["rel_change"] == pytest.approx(3 * na / math.hypot(na, nb), rel=1e-12)
    assert row["cosine"] == pytest.approx((4 * na**2 + nb**2) / (
        math.hypot(na, nb) * math.hypot(4 * na, nb)), rel=1e-12)


def test_inferred_kinds_match_module_types():
    for arch in ("convnet", "resnet", "mlp"):
        model = _model(arch)
        state = model.state_dict()
        kinds = parameter_kinds(model)
        for name, t in state.items():
            if t.is_floating_point():
                assert infer_kind(name, t, set(state)) == kinds[name], name


def test_default_blocks_tensor_level_and_zero_norms():
    before = {"blocks.0.0.weight": torch.ones(2, 3), "blocks.0.0.bias": torch.zeros(2),
              "head.bias": torch.zeros(2)}
    after = {"blocks.0.0.weight": -torch.ones(2, 3), "blocks.0.0.bias": torch.ones(2),
             "head.bias": torch.zeros(2)}
    df = compare_weights(before, after, level="tensor")
    assert list(df["name"]) == list(before) and list(df["block"]) == ["blocks.0"] * 2 + ["head"]
    w = df.iloc[0]
    assert (w["kind"], w["rel_change"], w["cosine"]) == ("linear weight", 2.0, -1.0)
    assert math.isnan(df.iloc[1]["rel_change"]) and math.isnan(df.iloc[1]["cosine"])
    assert df.iloc[2]["rel_change"] == 0 and math.isnan(df.iloc[2]["cosine"])


def test_errors():
    before = {"a.weight": torch.ones(2, 2), "b.weight": torch.ones(2)}
    with pytest.raises(UserError, match=r"different parameter names \(only in before: "
                                        r"b.weight; only in after: c.weight\)"):
        compare_weights(before, {"a.weight": torch.ones(2, 2), "c.weight": torch.ones(2)})
    with pytest.raises(UserError, match=r"'a.weight' has shape \(2, 2\) before but \(3, 2\) "
                                        "after.*--skip-mismatched"):
        compare_weights(before, {**before, "a.weight": torch.ones(3, 2)})
    df = compare_weights(before, {**before, "a.weight": torch.ones(3, 2)}, skip_mismatched=True)
    assert df.attrs["skipped"] == ["a.weight"] and list(df["block"]) == ["b"]
    with pytest.raises(UserError, match="block_of has no block for b.weight"):
        compare_weights(before, before, block_of={"a.weight": "x"})
    with pytest.raises(UserError, match="level='block' is invalid"):
        compare_weights(before, before, level="block")
