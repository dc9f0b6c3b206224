"""SVCCA, PWCCA and Procrustes: closed forms and invariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from transferlab.similarity import cca_correlations, procrustes_distance, pwcca, svcca


def _pair(seed, n=200, p=5, q=8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + 1.0
    y = x @ rng.standard_normal((p, q)) + 2.0 * rng.standard_normal((n, q))
    return x, y


def _orthonormal_centred(n, k, seed):
    """k orthonormal columns (n, k), each with zero mean."""
    a = np.random.default_rng(seed).standard_normal((n, k))
    q, _ = np.linalg.qr(a - a.mean(axis=0))
    return q


def test_one_dimensional_cca_is_absolute_pearson_correlation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 1))
    y = -0.5 * x + rng.standard_normal((100, 1))
    r = abs(np.corrcoef(x[:, 0], y[:, 0])[0, 1])
    assert svcca(x, y, keep=1.0) == pytest.approx(r, abs=1e-12)
    assert pwcca(x, y) == pytest.approx(r, abs=1e-12)
    assert procrustes_distance(x, y) == pytest.approx(2 - 2 * r, abs=1e-12)


def test_pwcca_closed_form():
    """X = [s1 u1, s2 u2], Y = [u1, c u2 + s v] (u1, u2, v orthonormal, centred): canonical
    pairs (u1, u1) with rho = 1 and (u2, c u2 + s v) with rho = c; X's variates are u1, u2,
    so the weights are s1, s2 and PWCCA = (s1 + c s2) / (s1 + s2)."""
    u = _orthonormal_centred(50, 3, seed=1)
    s1, s2, c = 3.0, 1.0, 0.6
    x = np.column_stack([s1 * u[:, 0], s2 * u[:, 1]])
    y = np.column_stack([u[:, 0], c * u[:, 1] + np.sqrt(1 - c**2) * u[:, 2]])
    np.testing.assert_allclose(cca_correlations(x, y), [1.0, c], atol=1e-12)
    assert pwcca(x, y) == pytest.approx((s1 + c * s2) / (s1 + s2), abs=1e-12)
    assert svcca(x, y, keep=1.0) == pytest.approx((1 + c) / 2, abs=1e-12)


def test_svcca_keep_drops_low_variance_directions():
    """X keeps 99% of its variance in the first of its two directions: keep=0.9 drops the
    second, so only the perfectly shared direction remains."""
    u = _orthonormal_centred(60, 3, seed=2)
    x = np.column_stack([10 * u[:, 0], 0.1 * u[:, 1]])
    y = np.column_stack([u[:, 0], u[:, 2]])  # shares u1 only
    assert svcca(x, y, keep=1.0) == pytest.approx(0.5, abs=1e-12)
    assert svcca(x, y, keep=0.9) == pytest.approx(1.0, abs=1e-12)


def test_cca_invariant_to_invertible_maps_procrustes_is_not():
    x, y = _pair(3)
    a = np.random.default_rng(4).standard_normal((5, 5)) + 3 * np.eye(5)  # invertible
    base_rho = cca_correlations(x, y)
    np.testing.assert_allclose(cca_correlations(x @ a, y), base_rho, atol=1e-10)
    assert svcca(x @ a, y, keep=1.0) == pytest.approx(svcca(x, y, keep=1.0), abs=1e-10)
    assert svcca(x, x @ a, keep=1.0) == pytest.approx(1.0, abs=1e-10)
    assert procrustes_distance(x, x @ a) > 0.05
    assert abs(procrustes_distance(x @ a, y) - procrustes_distance(x, y)) > 0.01


def test_pwcca_is_not_invariant_to_invertible_maps_but_is_one_on_the_same_span():
    x, y = _pair(5)
    a = np.diag([1.0, 10.0, 1.0, 0.1, 1.0])
    assert pwcca(x, x @ a) == pytest.approx(1.0, abs=1e-10)
    assert abs(pwcca(x @ a, y) - pwcca(x, y)) > 1e-3


def test_procrustes_zero_under_rotation_translation_scaling_and_matches_direct_formula():
    x, y = _pair(6)
    q, _ = np.linalg.qr(np.random.default_rng(7).standard_normal((5, 5)))
    assert procrustes_distance(x, 2.5 * x @ q + 4.0) == pytest.approx(0.0, abs=1e-10)
    for n, p, qq in [(50, 5, 8), (10, 30, 40)]:  # tall, and wide (row-space shortcut)
        x, y = _pair(8, n=n, p=p, q=qq)
        xn, yn = x - x.mean(0), y - y.mean(0)
        xn, yn = xn / np.linalg.norm(xn), yn / np.linalg.norm(yn)
        want = 2 - 2 * np.linalg.norm(xn.T @ yn, "nuc")
        assert procrustes_distance(x, y) == pytest.approx(want, abs=1e-10)
        assert 0 < procrustes_distance(x, y) <= 2


def test_cca_warns_when_ranks_exceed_samples():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((10, 8)), rng.standard_normal((10, 8))
    with pytest.warns(UserWarning, match="some canonical correlations are 1"):
        rho = cca_correlations(x, y)
    assert rho[0] == pytest.approx(1.0, abs=1e-10)  # forced overlap, independent data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svcca(*_pair(10))  # enough samples: no warning
