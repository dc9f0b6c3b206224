"""Block-by-block similarity of two models: agreement with per-pair metrics on flattened
block outputs, batching invariance, the minibatch path, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.models import BlockModel, build_model
from transferlab.similarity import (debiased_linear_cka, linear_cka, procrustes_distance,
                                    rbf_cka)
from transferlab.similarity.blockwise import block_similarity


def _convnet(seed):
    torch.manual_seed(seed)
    return build_model("convnet", num_classes=3, in_channels=1, image_size=8, width=4,
                       fc_width=8, conv_stages=3)


@pytest.fixture(scope="module")
def x():
    return torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _flat_outputs(model, x):
    """Reference: each block's output flattened to (n, C*H*W), computed independently."""
    model.eval()
    with torch.no_grad():
        outs, h = [], x
        for block in model.blocks:
            h = block(h)
            outs.append(h.reshape(len(x), -1).double().clone().numpy())
    return outs


@pytest.mark.parametrize("metric,fn", [("linear_cka", linear_cka),
                                       ("debiased_linear_cka", debiased_linear_cka),
                                       ("rbf_cka", rbf_cka),
                                       ("procrustes", procrustes_distance)])
def test_matches_metric_on_flattened_block_outputs(x, metric, fn):
    a, b = _convnet(0), _convnet(1)
    got = block_similarity(a, b, x, metric=metric, batch_size=16)
    ref_a, ref_b = _flat_outputs(a, x), _flat_outputs(b, x)
    assert got.shape == (len(a.blocks), len(b.blocks)) == (5, 5)
    assert ref_a[0].shape[1] == 4 * 4 * 4  # conv1: C=4, pooled to 4 x 4: C*H*W features
    want = np.array([[fn(p, q) for q in ref_b] for p in ref_a])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.ptp(got) > 0.05  # distinct blocks give distinct values


def test_same_model_gives_symmetric_matrix_with_unit_diagonal_and_restores_mode(x):
    model = _convnet(2)
    model.train()
    got = block_similarity(model, model, x)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-10)
    np.testing.assert_allclose(got, got.T, atol=1e-10)
    assert model.training  # eval() only for the duration of the call


def test_batch_size_and_custom_metric_path_do_not_change_values(x):
    a, b = _convnet(3), build_model("mlp", num_classes=3, image_size=8, width=12, depth=2)
    one = block_similarity(a, b, x, batch_size=40)
    many = block_similarity(a, b, x, batch_size=3)  # 13 batches + a merged remainder
    # float32 activations: the default follows their precision (agrees with float64 to ~1e-6)
    by_pair = block_similarity(a, b, x, metric=lambda p, q: linear_cka(p, q))  # no Gram cache
    assert one.shape == (5, 2)
    np.testing.assert_allclose(many, one, atol=1e-6)
    np.testing.assert_allclose(by_pair, one, atol=1e-6)


def test_minibatch_one_batch_equals_debiased_and_many_batches_stay_close(x):
    a, b = _convnet(4), _convnet(5)
    debiased = block_similarity(a, b, x, metric="debiased_linear_cka")
    one = block_similarity(a, b, x, metric="minibatch_cka", batch_size=40)
    np.testing.assert_allclose(one, debiased, atol=1e-6)
    two = block_similarity(a, b, x, metric="minibatch_cka", batch_size=20)
    assert not np.allclose(two, one, atol=1e-6)  # really a different estimator...
    assert np.abs(two - one).max() < 0.3  # ...of the same quantity


def test_errors(x):
    a = _convnet(6)
    with pytest.raises(UserError, match=r"metric='cka' is invalid: allowed are linear_cka, .*"
                                        "procrustes, knn_overlap, minibatch_cka"):
        block_similarity(a, a, x, metric="cka")
    with pytest.raises(UserError, match="model_b: model=Linear has no declared blocks"):
        block_similarity(a, nn.Linear(3, 3), x)
    with pytest.raises(UserError, match="batch_size=2 is invalid: allowed is an integer >= 4"):
        block_similarity(a, a, x, metric="minibatch_cka", batch_size=2)
    with pytest.raises(UserError, match=r"x has shape \(3, 1, 8, 8\): allowed is a batch of "
                                        "at least 4"):
        block_similarity(a, a, x[:3], metric="debiased_linear_cka")
    with pytest.raises(UserError, match="model_a cannot run on inputs of shape \\(3, 8, 8\\)"):
        block_similarity(a, a, torch.randn(10, 3, 8, 8))
    with pytest.raises(UserError, match=r"need about 0 MB, above max_activation_mb=0.0001; "
                                        "pass fewer samples, metric='minibatch_cka'"):
        block_similarity(a, a, x, max_activation_mb=1e-4)


def test_dead_block_is_named():
    dead = BlockModel([nn.Flatten(), nn.Sequential(nn.Linear(4, 3), nn.ReLU())],
                      nn.Linear(3, 2), ["flat", "dead"])
    with torch.no_grad():
        dead.blocks[1][0].bias.fill_(-100.0)  # ReLU of very negative: all zeros
    x = torch.randn(10, 1, 2, 2)
    with pytest.raises(UserError, match="model_b block 'dead' has no variance"):
        block_similarity(dead, dead, x)
    with pytest.raises(UserError, match=r"model_a block 'flat' vs model_b block 'dead': Y has "
                                        "no variance"):
        block_similarity(dead, dead, x, metric="svcca")
