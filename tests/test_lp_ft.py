"""``lp-ft``: linear probe, then fine-tuning from that head (Kumar et al. 2022)."""

from __future__ import annotations

import math

import pytest
import torch

from transferlab.api import pretrain, transfer
from transferlab.data import make_task
from transferlab.errors import UserError
from transferlab.protocols import get_protocol

FAST = {"batch_size": 64, "device": "cpu", "lr": 0.05}


@pytest.fixture(scope="module")
def tasks():
    return make_task("digits:classes=0-4"), make_task("digits:classes=5-9:per_class=10")


@pytest.fixture(scope="module")
def source(tasks):
    return pretrain(tasks[0], "mlp", {**FAST, "epochs": 20}, seed=0, progress=False,
                    width=32, depth=3).model


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, True, "0.1"])
def test_config_refuses_a_bad_probe_penalty(bad):
    with pytest.raises(UserError, match="lp_l2"):
        get_protocol("lp-ft", lp_l2=bad)


def test_config_defaults_and_refusals():
    cfg = get_protocol("lp-ft").config
    assert cfg.lp_l2 is None and not cfg.freeze_prefix and cfg.default_lr_mult == 0.1
    with pytest.raises(UserError, match="lp-ft"):
        get_protocol("lp-ft", freeze_prefix=True)
    assert get_protocol("lp-ft", lp_l2=0.01).config.lp_l2 == 0.01


def test_the_head_starts_at_the_linear_probe_solution(source, tasks):
    """epochs = 0 leaves the model as the probe stage left it: its head is the logistic
    regression of the pretrained top features of the TRAIN split (sklearn, independently),
    and no block moved."""
    from sklearn.linear_model import LogisticRegression

    tgt, l2 = tasks[1], 1e-2
    res = transfer(source, tgt, "lp-ft", {**FAST, "epochs": 0, "l2": l2}, progress=False)
    with torch.no_grad():
        x = source.eval().features(tgt.x_train, source.num_blocks).flatten(1).double().numpy()
    # the probe solves on standardised features x / s (the train split's spread) and writes
    # W / s into the head
    from transferlab.models.standardize import feature_scale

    s = feature_scale(torch.from_numpy(x).float()).pow(2).mean().sqrt().double().item()  # global
    ref = LogisticRegression(C=1 / (len(x) * l2), max_iter=5000, tol=1e-10).fit(
        x / s, tgt.y_train.numpy())
    ours = res.model.head.weight.detach().double().numpy() * s
    ours, theirs = ours - ours.mean(0), ref.coef_ - ref.coef_.mean(0)
    assert abs(ours - theirs).max() < 2e-3 * max(1.0, abs(theirs).max())
    src_state = source.state_dict()
    for name, v in res.model.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(v, src_state[name]), name
    # the val split did not train the head (it stays a clean check for the epochs)
    assert res.metrics["val_acc"] < 1.0 or len(tgt.y_val) == 0


def test_it_fine_tunes_every_block_and_beats_finetune_where_the_head_matters(source, tasks):
    """Five full-batch steps from a random head (finetune) leave the model near chance on
    5 digit classes; from the probe's head (lp-ft) they keep the probe's accuracy."""
    tgt = tasks[1]
    lpft = [transfer(source, tgt, "lp-ft", {**FAST, "epochs": 5}, seed=s, progress=False)
            for s in (0, 1)]
    ft = [transfer(source, tgt, "finetune", {**FAST, "epochs": 5}, seed=s, progress=False)
          for s in (0, 1)]
    assert all(r.metrics["outcome"] == "ok" for r in lpft + ft)
    moved = [n for n, v in lpft[0].model.state_dict().items()
             if not n.startswith("head.") and not torch.equal(v, source.state_dict()[n])]
    assert moved and all(any(n.startswith(f"blocks.{i}.") for n in moved)
                         for i in range(source.num_blocks))
    mean = lambda rs: sum(r.metrics["test_acc"] for r in rs) / len(rs)  # noqa: E731
    assert mean(lpft) >= mean(ft) + 0.1
