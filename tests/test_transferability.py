"""Transferability estimators: closed forms, invariances, and agreement with straightforward
implementations of the papers' formulas written here independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.stats import entropy, multivariate_normal

from transferlab.transferability import (h_score, leep, logme, nce, regularized_h_score,
                                         transrate)


def _blobs(rng, n_per=15, c=3, d=6, sep=2.0):
    """Gaussian classes with shifted means: (n_per * c, d) features, labels 0..c-1."""
    y = np.repeat(np.arange(c), n_per)
    means = rng.standard_normal((c, d)) * sep
    return means[y] + rng.standard_normal((len(y), d)), y


# ---------------------------------------------------------------- LogME

def _logme_direct(f, y_cols):
    """max over (alpha, beta) of log N(y | 0, I/beta + F F^T/alpha) / n, averaged over the
    columns: the evidence written as the marginal Gaussian, maximised by a generic optimiser
    (no eigendecomposition, no fixed point)."""
    n = len(f)
    out = []
    for y in y_cols.T:
        def neg(p):
            a, b = np.exp(p)
            return -multivariate_normal(np.zeros(n), np.eye(n) / b + f @ f.T / a).logpdf(y)
        best = min((minimize(neg, x0, method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 20000})
                    for x0 in ([0.0, 0.0], [2.0, -1.0])), key=lambda r: r.fun)
        out.append(-best.fun / n)
    return float(np.mean(out))


@pytest.mark.parametrize("n_per,d", [(15, 6), (4, 30)])  # n > d and n < d
def test_logme_reaches_the_direct_maximum_of_the_evidence(n_per, d):
    f, y = _blobs(np.random.default_rng(3), n_per=n_per, d=d)
    direct = _logme_direct(f, np.eye(3)[y])
    assert logme(f, y) == pytest.approx(direct, abs=1e-6)


def test_logme_regression_on_one_hot_equals_classification():
    f, y = _blobs(np.random.default_rng(4))
    assert logme(f, np.eye(3)[y], regression=True) == pytest.approx(logme(f, y), abs=1e-12)


def test_logme_regression_matches_direct_on_real_targets():
    rng = np.random.default_rng(5)
    f = rng.standard_normal((30, 4))
    t = f @ rng.standard_normal((4, 2)) + 0.3 * rng.standard_normal((30, 2))
    assert logme(f, t, regression=True) == pytest.approx(_logme_direct(f, t), abs=1e-6)


def test_logme_higher_for_separable_than_shuffled_labels():
    rng = np.random.default_rng(6)
    f, y = _blobs(rng, n_per=40, sep=3.0)
    assert logme(f, y) > logme(f, rng.permutation(y)) + 0.1


def test_logme_accepts_torch_float32():
    f, y = _blobs(np.random.default_rng(7))
    ft = torch.from_numpy(f).float()
    assert logme(ft, torch.from_numpy(y)) == pytest.approx(logme(ft.numpy(), y), abs=1e-12)


# ---------------------------------------------------------------- LEEP and NCE

def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _leep_loops(theta, y):
    """Nguyen et al. eq. 1-2, with explicit loops."""
    n, zc = theta.shape
    c = y.max() + 1
    joint = np.zeros((c, zc))
    for i in range(n):
        joint[y[i]] += theta[i] / n
    cond = joint / joint.sum(0)
    return float(np.mean([np.log(sum(cond[y[i], z] * theta[i, z] for z in range(zc)))
                          for i in range(n)]))


def test_leep_matches_the_papers_formula_and_is_at_most_zero():
    rng = np.random.default_rng(8)
    y = np.repeat(np.arange(4), 10)
    theta = _softmax(rng.standard_normal((40, 7)) * 2 + np.eye(7)[y * 2 % 7] * 3)
    value = leep(theta, y)
    assert value == pytest.approx(_leep_loops(theta, y), abs=1e-12)
    assert value <= 0
    assert leep(torch.from_numpy(theta).float(), torch.from_numpy(y)) <= 0


def test_leep_is_zero_when_hard_source_predictions_determine_the_labels():
    y = np.repeat(np.arange(3), 5)
    theta = np.eye(6)[y * 2 + np.arange(15) % 2]  # two source classes per target class
    assert leep(theta, y) == pytest.approx(0.0, abs=1e-12)


def _nce_by_entropy(z, y):
    """-H(Y|Z) = -sum_z P(z) H(Y | Z=z), with scipy's entropy."""
    return float(-sum(np.mean(z == v) * entropy(np.bincount(y[z == v])) for v in np.unique(z)))


def test_nce_matches_conditional_entropy():
    rng = np.random.default_rng(9)
    y = np.repeat(np.arange(3), 12)
    z = np.where(rng.random(36) < 0.7, y + 5, rng.integers(0, 9, 36))
    assert nce(z, y) == pytest.approx(_nce_by_entropy(z, y), abs=1e-12)


def test_nce_is_zero_when_source_labels_determine_targets():
    y = np.repeat(np.arange(3), 6)
    z = 10 * y + np.arange(18) % 3  # many source labels per target, never shared
    assert nce(z, y) == pytest.approx(0.0, abs=1e-15)


def test_nce_of_an_uninformative_source_is_minus_the_label_entropy():
    y = np.repeat(np.arange(4), 5)
    assert nce(np.zeros(20, dtype=int), y) == pytest.approx(-np.log(4), abs=1e-12)


# ---------------------------------------------------------------- H-scores

def _h_score_loops(f, y):
    """Bao et al.: tr(cov(f)^+ cov(E[f|y])), covariances built sample by sample."""
    mu = f.mean(0)
    cov_f = sum(np.outer(r - mu, r - mu) for r in f) / len(f)
    g = np.stack([f[y == y[i]].mean(0) for i in range(len(f))])
    cov_g = sum(np.outer(r - mu, r - mu) for r in g) / len(f)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-10) @ cov_g))


def test_h_score_matches_the_papers_formula():
    f, y = _blobs(np.random.default_rng(10))
    assert h_score(f, y) == pytest.approx(_h_score_loops(f, y), abs=1e-9)


def test_h_score_invariant_to_an_invertible_linear_map():
    rng = np.random.default_rng(11)
    f, y = _blobs(rng)
    a = rng.standard_normal((6, 6)) + 3 * np.eye(6)
    assert h_score(f @ a, y) == pytest.approx(h_score(f, y), rel=1e-9)
    assert h_score(f, y) <= 3 - 1 + 1e-9  # at most C - 1


def _ledoit_wolf_by_hand(x):
    """Ledoit & Wolf (2004) shrinkage towards mu I for centred x (n, d)."""
    n, d = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / d
    delta2 = np.sum((s - mu * np.eye(d)) ** 2)
    beta2 = min(sum(np.sum((np.outer(r, r) - s) ** 2) for r in x) / n ** 2, delta2)
    a = beta2 / delta2
    return (1 - a) * s + a * mu * np.eye(d), a


@pytest.mark.parametrize("n_per,d", [(15, 6), (4, 20)])
def test_regularized_h_score_matches_hand_ledoit_wolf(n_per, d):
    f, y = _blobs(np.random.default_rng(12), n_per=n_per, d=d)
    fc = f - f.mean(0)
    cov, a = _ledoit_wolf_by_hand(fc)
    g = np.stack([fc[y == k].mean(0) for k in y])
    expected = np.trace(np.linalg.inv(cov) @ ((1 - a) * g.T @ g / len(f)))
    assert regularized_h_score(f, y) == pytest.approx(expected, abs=1e-9)
    assert regularized_h_score(f, y) < h_score(f, y) + 1e-9  # shrinkage only lowers it


# ---------------------------------------------------------------- TransRate

def _transrate_direct(f, y, eps=1e-4):
    """Huang et al.: R(Z) - mean_c R(Z_c), each log det taken in d x d."""
    z = f - f.mean(0)

    def rate(m):
        return 0.5 * np.linalg.slogdet(np.eye(m.shape[1]) + m.T @ m / (len(m) * eps))[1]
    return rate(z) - np.mean([rate(z[y == k]) for k in range(y.max() + 1)])


@pytest.mark.parametrize("n_per,d", [(15, 6), (4, 20)])
def test_transrate_matches_the_direct_formula(n_per, d):
    f, y = _blobs(np.random.default_rng(13), n_per=n_per, d=d)
    assert transrate(f, y) == pytest.approx(_transrate_direct(f, y), abs=1e-9)
    assert transrate(f, y, eps=0.1) == pytest.approx(_transrate_direct(f, y, 0.1), abs=1e-9)


def test_transrate_invariant_to_rotation_and_translation():
    rng = np.random.default_rng(14)
    f, y = _blobs(rng)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert transrate(f @ q + 5.0, y) == pytest.approx(transrate(f, y), abs=1e-8)


# ---------------------------------------------------------------- bad input

FEATURE_FNS = [logme, h_score, regularized_h_score, transrate]


@pytest.mark.parametrize("fn", FEATURE_FNS)
def test_feature_estimators_reject_bad_input(fn):
    f, y = _blobs(np.random.default_rng(15))
    with pytest.raises(ValueError, match="labels has 44 samples but the features have 45"):
        fn(f, y[:-1])
    with pytest.raises(ValueError, match=r"labels has no sample of class \[1\]"):
        fn(f, np.where(y == 1, 0, y))
    bad = f.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="features contains 1 NaN or inf values"):
        fn(bad, y)
    with pytest.raises(ValueError, match="labels has 1 sample.s. of class 0: .* needs at "
                                         "least 2 per class"):
        fn(f[:3], np.arange(3))
    with pytest.raises(ValueError, match="labels has a negative value -1"):
        fn(f, y - 1)
    with pytest.raises(ValueError, match=r"features has shape \(45,\): allowed is a 2-D"):
        fn(f[:, 0], y)


def test_probability_estimators_reject_bad_input():
    y = np.repeat(np.arange(3), 4)
    probs = np.full((12, 5), 0.2)
    with pytest.raises(ValueError, match="source_probs has a row whose sum is .* pass "
                                         "softmax"):
        leep(probs * 3, y)
    with pytest.raises(ValueError, match="source_probs has a negative entry"):
        leep(probs - 0.3, y)
    with pytest.raises(ValueError, match="labels has 11 samples but the features have 12"):
        leep(probs, y[:-1])
    with pytest.raises(ValueError, match=r"source_labels has shape \(11,\)"):
        nce(np.zeros(11, dtype=int), y)
    with pytest.raises(ValueError, match="labels has 1 sample.s. of class 0: nce needs"):
        nce(np.zeros(3, dtype=int), np.arange(3))
    with pytest.raises(ValueError, match="labels holds non-integer values"):
        nce(np.zeros(12, dtype=int), y + 0.5)


def test_transrate_rejects_bad_eps():
    f, y = _blobs(np.random.default_rng(16))
    with pytest.raises(ValueError, match="eps=0 is invalid: allowed is a finite number > 0"):
        transrate(f, y, eps=0)


def test_logme_regression_rejects_mismatched_targets():
    with pytest.raises(ValueError, match="labels has shape .* with regression=True"):
        logme(np.ones((5, 2)), np.ones(4), regression=True)


def test_logme_projections_without_eigenvectors_match_eigh():
    from transferlab.transferability.logme import THREADS_MIN_DIM, _eig_projections

    rng = np.random.default_rng(17)
    d = 300
    assert d >= THREADS_MIN_DIM  # the tridiagonal path, not eigh itself
    a = rng.standard_normal((400, d))
    sym, b = a.T @ a, rng.standard_normal((d, 3))
    s, proj = _eig_projections(sym.copy(), b)
    s_ref, v = np.linalg.eigh(sym)
    assert np.allclose(s, s_ref, rtol=0, atol=1e-10 * s_ref.max())
    assert np.allclose(proj ** 2, (v.T @ b) ** 2, rtol=0, atol=1e-9)


@pytest.mark.parametrize("duplicate", [False, True])
def test_logme_banded_solves_agree_with_the_spectral_form(duplicate):
    import importlib

    lm = importlib.import_module("transferlab.transferability.logme")
    f, y = _blobs(np.random.default_rng(18), n_per=60, c=4, d=25, sep=1.0)
    if duplicate:  # rank-deficient F^T F: two equal columns
        f = np.hstack([f, f[:, :1]])
    cols = np.eye(4)[y]
    s, fit = lm._problem(f, cols, banded=True)
    assert isinstance(fit, lm._Banded)
    s2, z2, out = lm._spectrum(f, cols)
    spectral = lm._Spectral(s2, z2, out)
    a, b = lm.fixed_point(s, fit, len(f), 4)
    a2, b2 = lm.fixed_point(s2, spectral, len(f), 4)
    ev = lm._evidence(s, fit, len(f), f.shape[1], a, b)
    ev2 = lm._evidence(s2, spectral, len(f), f.shape[1], a2, b2)
    assert np.allclose(ev / len(f), ev2 / len(f), rtol=0, atol=1e-9)


def test_logme_of_all_zero_features_is_the_noise_only_evidence():
    """A dead block (every feature 0): the evidence of y ~ N(0, 1/beta) at its best beta,
    n/||y||^2 per column, i.e. 1/2 log(n / n_c) - 1/2 log 2 pi - 1/2 for a 0/1 column of n_c
    ones; and no warning on the way (0/0 in the fixed point)."""
    import warnings

    y = np.array([0] * 10 + [1] * 30 + [2] * 20)
    want = np.mean([0.5 * np.log(60 / c) - 0.5 * np.log(2 * np.pi) - 0.5 for c in (10, 30, 20)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logme(np.zeros((60, 8)), y) == pytest.approx(want, abs=1e-12)
    # alpha -> inf (w = 0) is the same model, so any features score at least that much
    rng = np.random.default_rng(3)
    for scale in (1e-9, 1.0, 1e3):
        assert logme(rng.standard_normal((60, 8)) * scale, y) >= want - 1e-9
