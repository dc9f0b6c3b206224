"""Raw-scale vectors, divergence through the API, and metrics that were not measured.

The raw-scale task: two columns, one in units of 1e-3 and one of 1e3, whose class is the
sign of their standardised sum (a rule a linear model learns exactly). Before the input
standardisation, ``mlp`` diverged on it (NaN test NLL) and the linear probe's L-BFGS
overflowed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import transferlab as tl
from transferlab.data import from_arrays
from transferlab.models import BlockModel, Standardize, build_model
from transferlab.protocols.linear_probe import fit_probe

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"epochs": 5, "batch_size": 64, "min_steps": 0}


def _raw_scale_task(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n) * 1e-3, rng.normal(size=n) * 1e3 + 5e3
    y = ((a / 1e-3 + (b - 5e3) / 1e3) > 0).astype(np.int64)
    ds = from_arrays(np.stack([a, b], 1), y, name="rawscale")
    return tl.make_task("rawscale", dataset=ds)


@pytest.fixture(scope="module")
def raw_task():
    return _raw_scale_task()


def test_mlp_standardizes_vectors_by_default_not_images():
    assert build_model("mlp", 2, in_channels=2, image_size=1).arch["standardize"] is True
    assert build_model("mlp", 2, in_channels=1, image_size=8).arch["standardize"] is False
    off = build_model("mlp", 2, in_channels=2, image_size=1, standardize=False)
    assert not any(isinstance(m, Standardize) for m in off.modules())
    with pytest.raises(tl.UserError, match="standardize"):
        build_model("mlp", 2, in_channels=2, image_size=1, standardize="yes")


def test_mlp_trains_on_raw_scale_vectors(raw_task, tmp_path):
    res = tl.pretrain(raw_task, arch="mlp", train=SMALL, progress=False,
                      width=32, depth=2)
    assert res.metrics["outcome"] == "ok", res.metrics["reason"]
    assert math.isfinite(res.metrics["test_nll"])
    assert res.metrics["test_acc"] > 0.9  # chance is ~0.5
    std = next(m for m in res.model.modules() if isinstance(m, Standardize))
    # statistics of the training split only (not val, not test)
    x = raw_task.x_train.double()
    assert torch.allclose(std.mean, x.mean(0).float(), rtol=1e-5)
    assert torch.allclose(std.std, x.std(0, unbiased=False).float(), rtol=1e-4)
    assert std.std[0] < 1e-2 < 1e2 < std.std[1]
    # saved with the model: a loaded checkpoint applies the same transform
    path = tl.save_checkpoint(str(tmp_path / "m"), res.model, {})
    loaded, _ = tl.load_checkpoint(str(path).removesuffix(".safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded(raw_task.x_test), res.model(raw_task.x_test))
    # a transfer keeps the source's statistics (its input path), it does not refit them
    other = _raw_scale_task(seed=1)
    out = tl.transfer(res.model, other, "linear-probe", progress=False)
    std2 = next(m for m in out.model.modules() if isinstance(m, Standardize))
    assert torch.equal(std2.mean, std.mean)


def test_mlp_without_standardization_is_what_failed(raw_task):
    """The control: the same run with standardize=False does not learn the rule (so the
    test above measures the standardisation, not an easy task)."""
    res = tl.pretrain(raw_task, arch="mlp", train=SMALL, progress=False, width=32,
                      depth=2, standardize=False)
    assert res.metrics["outcome"] == "diverged" or res.metrics["test_acc"] < 0.8


def test_linear_probe_is_scale_invariant(raw_task):
    """A probe on raw features (an identity block): sensible accuracy, and rescaling a
    feature column rescales the fitted weight inversely, leaving predictions unchanged."""
    def probe(x_tr, x_va, x_te):
        model = BlockModel([nn.Flatten()], nn.Linear(2, 2))
        out = fit_probe(model, x_tr, raw_task.y_train, x_va, raw_task.y_val, scaling="feature")
        with torch.no_grad():
            return out, model, model(x_te)

    t = raw_task
    out, model, logits = probe(t.x_train, t.x_val, t.x_test)
    assert (logits.argmax(1) == t.y_test).float().mean() > 0.95
    assert out["val_acc"] > 0.9
    c = torch.tensor([1e4, 1e-4])
    out2, model2, logits2 = probe(t.x_train * c, t.x_val * c, t.x_test * c)
    assert out2["l2"] == out["l2"]
    assert torch.allclose(model2.head.weight * c, model.head.weight, rtol=1e-3, atol=1e-6)
    assert torch.allclose(logits2, logits, rtol=1e-3, atol=1e-3)


def test_linear_probe_through_transfer_on_raw_scale(raw_task):
    src = tl.pretrain(raw_task, arch="mlp", train={"epochs": 0}, progress=False,
                      width=32, depth=2)
    res = tl.transfer(src.model, raw_task, "linear-probe", progress=False)
    assert res.metrics["outcome"] == "ok"
    assert res.metrics["test_acc"] > 0.9


@pytest.mark.parametrize("protocol", ["freeze:0", "finetune"])
def test_forced_divergence_is_reported_by_the_api(raw_task, protocol):
    """A huge learning rate: outcome 'diverged' with its reason, not a NaN metric."""
    src = build_model("mlp", 2, in_channels=2, image_size=1, width=16, depth=2)
    res = tl.transfer(src, raw_task, protocol, train={**SMALL, "lr": 1e12}, progress=False)
    assert res.metrics["outcome"] == "diverged"
    assert "lr=" in res.metrics["reason"]


def test_pretrain_divergence_is_reported_by_the_api(raw_task):
    res = tl.pretrain(raw_task, arch="mlp", train={**SMALL, "lr": 1e12}, progress=False,
                      width=16, depth=2)
    assert res.metrics["outcome"] == "diverged"


def test_no_test_split_is_not_a_divergence(raw_task):
    import dataclasses

    empty = dataclasses.replace(raw_task, x_test=raw_task.x_test[:0], y_test=raw_task.y_test[:0])
    res = tl.pretrain(empty, arch="mlp", train=SMALL, progress=False, width=16, depth=2)
    assert res.metrics["outcome"] == "ok"


def test_val_acc_is_none_without_a_validation_split():
    """k = 3 shots: no validation split, so no validation accuracy (None, not 0.0)."""
    src = build_model("mlp", 3, in_channels=1, image_size=8, width=16, depth=2)
    task = tl.make_task("digits:classes=0-2:per_class=3")
    assert len(task.y_val) == 0
    for protocol in ("linear-probe", "freeze:1", "layer-mix"):
        res = tl.transfer(src, task, protocol, train=SMALL, progress=False)
        assert res.metrics["val_acc"] is None, protocol
        assert res.metrics["outcome"] == "ok", protocol
    assert res.metrics["l2_selection"].startswith("none: no validation data")
    with_val = tl.transfer(src, tl.make_task("digits:classes=0-2:per_class=8"), "layer-mix",
                           train=SMALL, progress=False)
    # 2 validation examples per class: L2 by cross-validation over the k (then refitted)
    assert with_val.metrics["l2_selection"].startswith(("val", "cv-"))
    assert 0 <= with_val.metrics["val_acc"] <= 1
