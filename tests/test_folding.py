"""models.folding: the frozen-inference rewrites give the block's own eval outputs."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab.models.folding import FrozenConv, MaxPool2x2, fold_for_inference
from transferlab.models.padded_conv import PaddedConv2d, crop_taps


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("hw", [(8, 8), (7, 7), (7, 10), (1, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_maxpool2x2_equals_max_pool2d_bit_for_bit(ceil_mode, hw, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, *hw, generator=g)
    x[0, 1, 0, 0] = float("nan")  # NaN wins a max in both
    x[1, 2, 0, :] = float("-inf")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if min(hw) < 2 and not ceil_mode:
        return  # max_pool2d rejects an empty output; nothing to compare
    want = nn.MaxPool2d(2, 2, ceil_mode=ceil_mode)(x)
    got = MaxPool2x2(ceil_mode)(x)
    assert got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(torch.nan_to_num(got), torch.nan_to_num(want))


def _block():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2, 2, ceil_mode=True))


def test_the_folded_block_computes_the_eval_output_and_leaves_the_block_alone():
    torch.manual_seed(0)
    block = _block()
    block.train()(torch.randn(64, 3, 9, 9))  # non-trivial running statistics
    block.eval()
    before = {k: v.clone() for k, v in block.state_dict().items()}
    folded = fold_for_inference(block)
    kinds = [type(m) for m in folded]
    # conv (BatchNorm folded in), Identity, the pool moved before the ReLU
    assert kinds == [nn.Conv2d, nn.Identity, MaxPool2x2, nn.ReLU]
    x = torch.randn(5, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(folded(x.contiguous(memory_format=torch.channels_last)),
                                   block(x), rtol=0, atol=1e-5)
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert all(torch.equal(v, before[k]) for k, v in block.state_dict().items())
    assert not any(p.requires_grad for p in folded.parameters())


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 2), nn.MaxPool2d(2, 1),
                                  nn.MaxPool2d(2, 2, padding=1), nn.AvgPool2d(2),
                                  nn.MaxPool2d(2, 2, return_indices=True)])
def test_other_pools_are_left_as_they_are(pool):
    folded = fold_for_inference(nn.Sequential(nn.ReLU(), pool))
    assert [type(m) for m in folded] == [nn.ReLU, type(pool)]


def test_a_non_monotone_activation_is_not_moved_past_the_pool():
    folded = fold_for_inference(nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.MaxPool2d(2)))
    assert [type(m) for m in folded] == [nn.Conv2d, nn.GELU, MaxPool2x2]


def _reference(x, conv, bn, pads):
    """What FrozenConv replaces: explicit zero padding, the conv, then eval BatchNorm."""
    top, bottom, left, right = pads
    return bn(conv(F.pad(x, (left, right, top, bottom))))


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (4, 4), (5, 8), (9, 7)])
@pytest.mark.parametrize("k, stride, pads", [(1, 1, (0, 0, 0, 0)), (3, 1, (1, 1, 1, 1)),
                                             (3, 2, (0, 1, 0, 1)), (5, 1, (2, 2, 2, 2)),
                                             (5, 2, (1, 2, 2, 1)), (3, 2, (3, 0, 0, 2))])
@pytest.mark.parametrize("groups", [1, 4])
def test_frozen_conv_equals_pad_conv_batchnorm(hw, k, stride, pads, groups):
    """Every geometry, the kernel cropped or not: the outputs of pad -> conv -> BN (float64,
    so that only the order of exact sums could differ)."""
    if hw[0] + pads[0] + pads[1] < k or hw[1] + pads[2] + pads[3] < k:
        return  # the reference has no output
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, k, stride=stride, groups=groups, bias=True).double()
    bn = nn.BatchNorm2d(8).double()
    bn.train()(conv(torch.randn(16, 4, k + 4, k + 4, dtype=torch.float64)))  # real statistics
    bn.eval()
    x = torch.randn(3, 4, *hw, dtype=torch.float64)
    frozen = FrozenConv(conv, bn, pads)
    with torch.no_grad():
        want = _reference(x, conv, bn, pads)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = frozen(x.contiguous(memory_format=layout))
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_a_1x1_input_keeps_only_the_centre_tap_of_a_same_padded_kernel():
    conv = nn.Conv2d(6, 6, 5, padding=2, groups=6, bias=False)
    frozen = FrozenConv(conv)
    with torch.no_grad():
        out = frozen(torch.randn(2, 6, 1, 1))
    weight, pads = frozen._plans[(1, 1)]
    assert weight.shape == (6, 1, 1, 1) and pads == (0, 0, 0, 0)
    torch.testing.assert_close(weight, conv.weight[:, :, 2:3, 2:3])
    assert out.shape == (2, 6, 1, 1)
    frozen.double()  # a dtype / device move drops the cropped copies
    assert frozen._plans == {}


@pytest.mark.parametrize("size, before, after, k, s, want", [
    (1, 2, 2, 5, 1, (2, 2, 0, 0)),    # 1 x 1, "same" 5 x 5: the centre tap alone
    (2, 2, 2, 5, 1, (1, 3, 1, 1)),    # two rows: taps 1..3, one zero each side
    (16, 0, 1, 3, 2, (0, 2, 0, 1)),   # TF "same" stride 2: nothing to crop
    (3, 0, 0, 3, 1, (0, 2, 0, 0)),    # no padding: every tap reads the input
    (1, 3, 0, 3, 2, (0, 2, 3, 0)),    # every tap reads padding: left uncropped
])
def test_crop_known_answers(size, before, after, k, s, want):
    assert crop_taps(size, k, s, before, after) == want


def test_frozen_conv_rejects_padding_it_cannot_represent():
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        FrozenConv(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="efficientnet extra not installed")
@pytest.mark.parametrize("size", [32, 64])
def test_efficientnet_frozen_features_equal_the_eval_blocks(size):
    """The stages' own frozen form (folded BatchNorm, cropped dead taps) computes what the
    eval-mode model computes, and the model is left as it was."""
    from transferlab.features import inference_prefix, prefix_features
    from transferlab.models import efficientnet_lite0

    model = efficientnet_lite0(num_classes=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, size, size)
    with torch.no_grad():
        want = model.features(x, model.num_blocks)
        got = prefix_features(model, x, model.num_blocks)
    torch.testing.assert_close(got.flatten(1), want.flatten(1), rtol=1e-4, atol=1e-4)
    frozen = inference_prefix(model, model.num_blocks)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    assert sum(isinstance(m, FrozenConv) for m in frozen.modules()) == 2 + sum(
        2 + (mb._block_args.expand_ratio != 1) for stage in model.blocks[1:-1]
        for mb in stage.mbconvs)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("start", [0, 2])
def test_a_folded_evaluation_scores_like_the_eval_model(start):
    """evaluate(fold=True) (a trial's test split) is the eval model's function: the same
    softmax to float rounding, and the model itself is left in the mode it was in."""
    from transferlab.models import build_model
    from transferlab.train.loop import evaluate

    torch.manual_seed(0)
    model = build_model("convnet", num_classes=3, in_channels=1, image_size=16)
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
    x, y = torch.randn(300, 1, 16, 16), torch.randint(0, 3, (300,))
    h = model.eval().features(x, start).detach()
    model.train()
    plain = evaluate(model, h, y, start, batch_size=64, return_probs=True)
    folded = evaluate(model, h, y, start, batch_size=64, return_probs=True, fold=True)
    assert model.training
    assert torch.allclose(plain[2], folded[2], atol=1e-5)
    assert abs(plain[1] - folded[1]) < 1e-5
    assert plain[0] == folded[0]
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # not folded in place


def test_a_model_with_its_own_forward_from_is_not_folded():
    """layer-mix reads cached per-layer features through its own forward_from: fold=True
    must score it that way, not push its features through the blocks."""
    from transferlab.models.base import BlockModel
    from transferlab.train.loop import evaluate

    class Own(BlockModel):
        def forward_from(self, h, start):
            return self.head(h.mean(1))

    model = Own(nn.ModuleList([nn.Linear(4, 4)]), nn.Linear(4, 2), ["b1"])
    h, y = torch.randn(10, 3, 4), torch.randint(0, 2, (10,))
    assert evaluate(model, h, y, fold=True) == evaluate(model, h, y)


@pytest.mark.parametrize("k, pad", [(1, 0), (3, 1), (5, 2)])
@pytest.mark.parametrize("c_out, groups", [(8, 1), (4, 4), (8, 4)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias, with_bn", [(True, True), (False, True), (False, False)])
def test_a_one_tap_conv_on_a_1x1_input_is_a_matrix_product(k, pad, c_out, groups, stride,
                                                           bias, with_bn, monkeypatch):
    """At 1 x 1 the cropped conv runs as addmm (groups=1) or a per-channel scale
    (depthwise) -- the conv's outputs (float64, 1e-12) -- and only there: a grouped conv
    that is neither falls back to the conv."""
    import transferlab.models.folding as folding

    torch.manual_seed(0)
    conv = nn.Conv2d(4, c_out, k, stride=stride, padding=pad, groups=groups,
                     bias=bias).double()
    bn = nn.BatchNorm2d(c_out).double()
    bn.train()(conv(torch.randn(16, 4, 5, 5, dtype=torch.float64)))
    bn.eval()
    if not with_bn:  # no bias at all: the product without its addend
        bn = nn.Identity()
    frozen = FrozenConv(conv, bn if with_bn else None)
    assert (frozen.bias is None) == (not bias and not with_bn)
    x = torch.randn(3, 4, 1, 1, dtype=torch.float64)
    convs = []
    real = folding.conv_over_pads
    monkeypatch.setattr(folding, "conv_over_pads", lambda *a, **kw: convs.append(1) or
                        real(*a, **kw))
    with torch.no_grad():
        want = bn(conv(x))
        for layout in (torch.contiguous_format, torch.channels_last):
            got = frozen(x.contiguous(memory_format=layout))
            assert got.shape == want.shape == (3, c_out, 1, 1)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    pointwise = groups == 1 or groups == 4 == c_out
    assert convs == ([] if pointwise else [1, 1])
