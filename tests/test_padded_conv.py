"""models.padded_conv: a conv over explicit (asymmetric) zero padding, dead kernel taps
skipped, gives the outputs and the gradients of pad-then-conv; EfficientNet uses it."""

from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transferlab.models.padded_conv import PaddedConv2d


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 8)])
@pytest.mark.parametrize("k, stride, pads", [(3, 2, (0, 1, 0, 1)), (5, 1, (2, 2, 2, 2)),
                                             (5, 2, (1, 2, 2, 1)), (1, 1, (0, 0, 0, 0))])
@pytest.mark.parametrize("groups", [1, 4])
def test_outputs_and_gradients_equal_pad_then_conv(hw, k, stride, pads, groups):
    if hw[0] + pads[0] + pads[1] < k or hw[1] + pads[2] + pads[3] < k:
        return  # no output to compare
    torch.manual_seed(0)
    conv = PaddedConv2d(4, 8, k, stride=stride, groups=groups, pads=pads).double()
    x = torch.randn(3, 4, *hw, dtype=torch.float64, requires_grad=True)
    top, bottom, left, right = pads
    want = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, conv.bias, stride,
                    0, 1, groups)
    got = conv(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    g = torch.randn_like(want)
    gx_w, gw_w, gb_w = torch.autograd.grad(want, (x, conv.weight, conv.bias), g)
    gx, gw, gb = torch.autograd.grad(conv(x), (x, conv.weight, conv.bias), g)
    for a, b in ((gx, gx_w), (gw, gw_w), (gb, gb_w)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_from_conv_shares_the_parameters_and_bad_padding_is_refused():
    conv = nn.Conv2d(2, 3, 3, bias=False)
    new = PaddedConv2d.from_conv(conv, (1, 1, 0, 2))
    assert new.weight is conv.weight and new.bias is None and new.pads == (1, 1, 0, 2)
    assert set(new.state_dict()) == set(conv.state_dict())
    with pytest.raises(ValueError, match="takes its padding as pads="):
        PaddedConv2d(2, 3, 3, padding=1)
    with pytest.raises(ValueError, match=r"pads=\(1, 1\) is invalid"):
        PaddedConv2d(2, 3, 3, pads=(1, 1))


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="efficientnet extra not installed")
def test_efficientnet_trains_like_the_package_at_32_px():
    """Our EfficientNet-Lite0 (padded convs) and the package's, same weights: the same
    outputs in train mode at 32 px (its last stages 1 x 1: kernels cropped) and the same
    gradients."""
    from efficientnet_lite_pytorch import EfficientNet

    from transferlab.models import efficientnet_lite0

    ours = efficientnet_lite0(pretrained=False)
    assert not [m for m in ours.modules() if type(m).__name__ == "Conv2dStaticSamePadding"]
    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict({k: v for k, v in zip(ref.state_dict(), ours.state_dict().values())})
    for m in (ours, ref):
        m.train()
        for mod in m.modules():  # drop-connect and dropout draw: off for a comparison
            if isinstance(mod, nn.Dropout):
                mod.p = 0.0
        if hasattr(m, "_global_params"):
            m._global_params = m._global_params._replace(drop_connect_rate=None)
    for stage in ours.blocks[1:-1]:
        stage.rates = [0.0] * len(stage.rates)
    x = torch.randn(4, 3, 32, 32)
    out, want = ours(x), ref(x)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    out.square().mean().backward()
    want.square().mean().backward()
    g_ours = ours.blocks[-2].mbconvs[-1]._depthwise_conv.weight.grad
    g_ref = ref._blocks[-1]._depthwise_conv.weight.grad
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-3, atol=1e-6)
