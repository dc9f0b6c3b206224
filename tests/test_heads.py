"""Pooling heads, head_input / head_linear, and the CNN path they must leave unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.inputs import Hidden
from transferlab.models import BlockModel, PooledHead, build_model, head_input, head_linear
from transferlab.models.heads import pool_features, replace_head


def test_mean_pool_ignores_masked_positions_exactly():
    h = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    got = pool_features(Hidden(h, mask), "mean")
    for i, n in enumerate(mask.sum(1).tolist()):
        assert torch.allclose(got[i], h[i, :n].mean(0), atol=1e-6)
    # changing what sits under the padding changes nothing
    h2 = h.clone()
    h2[mask == 0] = 1e3
    assert torch.allclose(pool_features(Hidden(h2, mask), "mean"), got, atol=1e-6)
    assert torch.equal(pool_features(Hidden(h, mask), "cls"), h[:, 0])
    assert pool_features(torch.randn(2, 3, 4, 4), "flatten").shape == (2, 48)
    with pytest.raises(UserError, match="pool='mean' needs"):
        pool_features(torch.randn(2, 3, 4, 4), "mean")
    with pytest.raises(ValueError, match="pool"):
        PooledHead("max", nn.Linear(4, 2))


def test_flatten_pooled_head_equals_the_plain_linear_head():
    torch.manual_seed(0)
    model = build_model("convnet", 3, 1, 8, width=4, fc_width=8, conv_stages=3)
    model.eval()
    x = torch.randn(5, 1, 8, 8)
    plain = model(x)
    model.head = PooledHead("flatten", model.head)
    assert torch.equal(model(x), plain)
    feats = model.features(x, model.num_blocks)
    assert torch.equal(head_input(model, feats), feats.flatten(1))
    assert head_linear(model) is model.head.linear


def test_replace_head_keeps_pooling_and_head_input_applies_modules_before_the_linear():
    torch.manual_seed(0)
    pre = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    model = BlockModel([nn.Identity()], PooledHead("mean", pre))
    replace_head(model, 7, torch.Generator().manual_seed(1))
    assert isinstance(model.head, PooledHead) and model.head.pool == "mean"
    assert head_linear(model).out_features == 7 and head_linear(model) is model.head.linear[3]
    h = Hidden(torch.randn(3, 5, 4), torch.ones(3, 5, dtype=torch.long))
    model.train()  # head_input runs the head's modules in eval mode (dropout off) ...
    got = head_input(model, h)
    ref = torch.tanh(pre[1](h.hidden.mean(1)))
    assert torch.allclose(got, ref, atol=1e-6)
    assert model.head.linear[0].training  # ... and gives their mode back
    model.eval()
    assert torch.allclose(model(h), head_linear(model)(got), atol=1e-6)


def test_a_head_without_a_final_linear_is_refused_by_the_probe_view():
    model = BlockModel([nn.Identity()], nn.Sequential(nn.Linear(4, 2), nn.Softmax(1)))
    with pytest.raises(UserError, match="linear-probe"):
        head_linear(model)
