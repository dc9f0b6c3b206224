"""``probe:n``: a linear probe on block n's pooled output; probe:L is linear-probe."""

from __future__ import annotations

import pytest
import torch

from transferlab.api import pretrain, transfer
from transferlab.data import make_task
from transferlab.errors import UserError
from transferlab.features import FeatureCache
from transferlab.inputs import Hidden
from transferlab.models.pooling import pool_features

ARCH = {"width": 4, "fc_width": 16}
FAST = {"epochs": 2, "batch_size": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def tasks():
    return (make_task("digits:classes=0-4:size=16"),
            make_task("digits:classes=5-9:per_class=30:size=16"))


@pytest.fixture(scope="module")
def source(tasks):
    return pretrain(tasks[0], "convnet", {**FAST, "epochs": 3}, seed=0, progress=False,
                    **ARCH).model


def test_probe_at_the_last_block_is_linear_probe(source, tasks):
    a = transfer(source, tasks[1], "linear-probe", FAST, progress=False)
    b = transfer(source, tasks[1], f"probe:{source.num_blocks}", FAST, progress=False)
    assert b.metrics["test_acc"] == a.metrics["test_acc"]
    assert b.metrics["val_acc"] == a.metrics["val_acc"]
    assert b.metrics["l2"] == a.metrics["l2"]
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def test_probe_fits_logistic_regression_on_average_pooled_block_output(source, tasks):
    """Known answer: sklearn's logistic regression on the global average pool of
    conv3's output (computed here independently, by the source's own forward)."""
    from sklearn.linear_model import LogisticRegression

    l2, task = 1e-2, tasks[1]
    res = transfer(source, task, "probe:conv3", {**FAST, "l2": l2}, progress=False)
    assert res.model.block_names == ["conv1", "conv2", "conv3"] and res.metrics["depth"] == 3
    with torch.no_grad():  # the final fit reads every labelled example: train + val
        h = source.eval().features(torch.cat([task.x_train, task.x_val]), 3)  # (N, C, H, W)
        x = h.mean((2, 3)).double().numpy()                      # (N, C)
    assert x.shape[1] == res.model.head.linear.in_features == h.shape[1]
    # the probe solves on standardised features x / s and writes W / s into the head
    from transferlab.models.standardize import feature_scale

    # s: the train split's spread (the first len(x_train) rows of train + val)
    # (one scale for every feature, the probe's default 'global' scaling)
    s = feature_scale(h.mean((2, 3))[: len(task.x_train)]).pow(2).mean().sqrt().item()
    ref = LogisticRegression(C=1 / (len(x) * l2), max_iter=5000, tol=1e-10).fit(
        x / s, torch.cat([task.y_train, task.y_val]).numpy())
    ours = res.model.head.linear.weight.detach().double().numpy() * s
    ours, theirs = ours - ours.mean(0), ref.coef_ - ref.coef_.mean(0)
    assert abs(ours - theirs).max() < 2e-3 * max(1.0, abs(theirs).max())
    with torch.no_grad():  # the cut model's test accuracy is the probe's on pooled features
        xt = source.features(task.x_test, 3).mean((2, 3)).double().numpy()
    ref_acc = (ref.predict(xt / s) == task.y_test.numpy()).mean()
    assert res.metrics["test_acc"] == pytest.approx(ref_acc, abs=2 / len(xt))


def test_probe_moves_no_weight_of_the_source(source, tasks):
    before = {k: v.clone() for k, v in source.state_dict().items()}
    res = transfer(source, tasks[1], "probe:4", FAST, progress=False)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())
    kept = {k: v for k, v in res.model.state_dict().items() if k.startswith("blocks.")}
    assert kept and all(torch.equal(v, before[k]) for k, v in kept.items())
    assert res.metrics["trainable_params"] == sum(
        p.numel() for p in res.model.head.parameters())


def test_probe_shares_the_frozen_prefix_cache_with_freeze(source, tasks, tmp_path):
    cache = FeatureCache(tmp_path)
    transfer(source, tasks[1], "freeze:3", FAST, feature_cache=cache, progress=False)
    res = transfer(source, tasks[1], "probe:3", FAST, feature_cache=cache, progress=False)
    assert res.metrics["features_from_depth"] == 3  # a hit on freeze:3's entry
    res5 = transfer(source, tasks[1], "probe:5", FAST, feature_cache=cache, progress=False)
    assert res5.metrics["features_from_depth"] == 3  # chained: built from depth 3


def test_avg_pool_known_answers():
    x = torch.arange(24.0).reshape(2, 3, 2, 2)
    torch.testing.assert_close(pool_features(x, "avg"), x.reshape(2, 3, 4).mean(2))
    v = torch.randn(4, 5)
    assert torch.equal(pool_features(v, "avg"), v)
    states = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])  # (2, 3, 1)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(pool_features(Hidden(states, mask), "avg"),
                               torch.tensor([[2.0], [4.0]]))  # padding ignored


def test_probe_beyond_the_model_is_one_clear_error(source, tasks):
    with pytest.raises(UserError, match=r"depth=9 is invalid: allowed is 0\.\.7"):
        transfer(source, tasks[1], "probe:9", FAST, progress=False)
    with pytest.raises(UserError, match=r"block='conv9' is invalid"):
        transfer(source, tasks[1], "probe:conv9", FAST, progress=False)


def test_probe_runs_in_a_sweep_and_shares_features_with_freeze(tmp_path):
    from transferlab.checkpoint import save_checkpoint
    from transferlab.models import build_model
    from transferlab.sweep import run_sweep

    torch.manual_seed(0)
    src = save_checkpoint(tmp_path / "src", build_model("mlp", 3, 1, 8, width=16, depth=3),
                          {"task": "digits:classes=0-2:size=8"})
    df = run_sweep({"name": "probe", "target": "digits:classes=3-5:per_class=20:size=8",
                    "sources": {"src": {"checkpoint": str(src)}},
                    "axes": {"protocol": ["probe", "freeze"], "depth": [1, 2]},
                    "train": {"epochs": 1, "device": "cpu"}},
                   tmp_path / "s.sqlite", workers=1, progress=False)
    assert (df["status"] == "done").all() and len(df) == 4
    for d in (1, 2):
        rows = df[df["depth"] == d]
        assert set(rows["protocol"]) == {"probe", "freeze"}
        # whichever ran second found the first one's depth-d features in the cache
        assert (rows["features_from_depth"] == d).any(), rows[["protocol", "features_from_depth"]]
