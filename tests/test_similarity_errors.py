"""Input validation of every metric, and the metric registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.errors import UserError
from transferlab.similarity import (METRICS, debiased_linear_cka, get_metric, linear_cka, pwcca,
                                    rbf_cka, svcca)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((20, 5))
Y = RNG.standard_normal((20, 3))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_rejects_bad_input(name):
    metric = get_metric(name)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(UserError, match=r"X contains 1 NaN or inf"):
        metric(bad, Y)
    bad[3, 1] = np.inf
    with pytest.raises(UserError, match=r"X contains 1 NaN or inf"):
        metric(bad, Y)
    bad_y = torch.tensor(Y, dtype=torch.float32)
    bad_y[0, 2] = -float("inf")
    with pytest.raises(UserError, match=r"Y contains 1 NaN or inf"):
        metric(X, bad_y)
    with pytest.raises(UserError, match=r"X has 20 samples but Y has 19"):
        metric(X, Y[:19])
    with pytest.raises(UserError, match=r"X has shape \(20,\): allowed is a 2D array"):
        metric(X[:, 0], Y)
    with pytest.raises(UserError, match=r"Y has shape \(20, 3, 1\): allowed is a 2D array"):
        metric(X, Y[:, :, None])
    with pytest.raises(UserError, match=r"X has dtype <U1: allowed are numeric"):
        metric(np.full((20, 2), "a"), Y)
    # constant X: rbf_cka already fails on its bandwidth, the others on the normaliser
    with pytest.raises(UserError, match="^X has no variance across samples|^X: the median "
                                        "squared distance between samples is 0"):
        metric(np.ones((20, 4)), Y)


def test_nan_in_wide_inputs_is_caught_on_the_gram_path():
    bad = RNG.standard_normal((6, 50))
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="X contains 1 NaN"):
        linear_cka(bad, bad.copy(), method="gram")


@pytest.mark.parametrize("metric", [debiased_linear_cka,
                                    lambda a, b: linear_cka(a, b, debiased=True, method="gram"),
                                    lambda a, b: rbf_cka(a, b, debiased=True)])
def test_debiased_needs_four_samples(metric):
    with pytest.raises(UserError, match=r"n_samples=3: the debiased \(unbiased HSIC\) "
                                        "estimator needs at least 4"):
        metric(X[:3], Y[:3])
    assert np.isfinite(metric(X[:4], Y[:4]))


def test_parameter_errors():
    with pytest.raises(UserError, match=r"method='fast' is invalid: allowed are 'auto'"):
        linear_cka(X, Y, method="fast")
    for bad in (0, -1.0, float("nan"), "1", True):
        with pytest.raises(UserError, match=r"threshold=.* is invalid: allowed is a finite"):
            rbf_cka(X, Y, threshold=bad)
    for bad in (0, 1.5, "0.9"):
        with pytest.raises(UserError, match=r"keep=.* is invalid: allowed is a fraction"):
            svcca(X, Y, keep=bad)
    with pytest.raises(UserError, match="median squared distance between samples is 0"):
        rbf_cka(np.vstack([np.zeros((15, 2)), np.ones((5, 2))]), Y)


def test_registry():
    assert set(METRICS) == {"linear_cka", "rbf_cka", "debiased_linear_cka", "svcca", "pwcca",
                            "procrustes", "knn_overlap"}
    assert get_metric("pwcca") is pwcca
    assert get_metric("debiased_linear_cka")(X, Y) == pytest.approx(
        linear_cka(X, Y, debiased=True), abs=1e-15)
    with pytest.raises(UserError, match=r"metric='cka' is invalid: allowed are linear_cka, "
                                        r"rbf_cka, debiased_linear_cka, svcca, pwcca, procrustes, "
                                        r"knn_overlap"):
        get_metric("cka")
