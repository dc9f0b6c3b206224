"""models.folding: the frozen-inference rewrites give the block's own eval outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.models.folding import MaxPool2x2, fold_for_inference


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
