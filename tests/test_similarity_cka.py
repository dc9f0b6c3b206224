"""CKA: agreement with a straightforward implementation of the papers' formulas, invariances,
and the bias of the biased estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from transferlab.errors import UserError
from transferlab.similarity import debiased_linear_cka, linear_cka, rbf_cka

# ---- reference implementation, written from the papers with n x n matrices -------------


def ref_gram_linear(x):
    return x @ x.T


def ref_gram_rbf(x, threshold):
    """Kornblith et al. 2019: sigma = threshold * median distance; median over all n^2 entries
    of the squared distance matrix (as in their notebook)."""
    d2 = cdist(x, x, "sqeuclidean")
    sigma2 = threshold**2 * np.median(d2)
    return np.exp(-d2 / (2 * sigma2))


def ref_hsic(k, l):
    """Gretton et al. 2005: tr(K H L H) / (n - 1)^2."""
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h) / (n - 1) ** 2


def ref_hsic_unbiased(k, l):
    """Song et al. 2012, eq. (5), with the diagonals set to zero."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ kt @ lt @ one)) / (n * (n - 3))


def ref_cka(k, l, hsic):
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def _pair(seed, n=40, p=7, q=13, noise=1.0, offset=2.0):
    """Related but not identical X (n, p), Y (n, q), not centred."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + offset
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q)) - offset
    return x, y


# ---- agreement with the reference -------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("method", ["features", "gram", "auto"])
@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_matches_reference(seed, method, debiased):
    x, y = _pair(seed)
    hsic = ref_hsic_unbiased if debiased else ref_hsic
    want = ref_cka(ref_gram_linear(x), ref_gram_linear(y), hsic)
    assert 0.05 < abs(want) < 0.95  # a non-trivial value, so agreement means something
    assert linear_cka(x, y, debiased=debiased, method=method) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("threshold", [0.5, 1.0])
@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_cka_matches_reference(threshold, debiased):
    x, y = _pair(3)
    hsic = ref_hsic_unbiased if debiased else ref_hsic
    want = ref_cka(ref_gram_rbf(x, threshold), ref_gram_rbf(y, threshold), hsic)
    assert 0.05 < abs(want) < 0.95
    assert rbf_cka(x, y, threshold=threshold, debiased=debiased) == pytest.approx(want, abs=1e-6)


def test_gram_and_feature_forms_agree_when_wide_and_tall():
    for n, p, q in [(200, 5, 9), (12, 40, 30)]:  # n >> p + q and n << p + q
        x, y = _pair(4, n=n, p=p, q=q)
        for debiased in (False, True):
            a = linear_cka(x, y, debiased=debiased, method="features")
            b = linear_cka(x, y, debiased=debiased, method="gram")
            assert a == pytest.approx(b, abs=1e-10)


def test_torch_float32_input_matches_numpy_float64():
    x, y = _pair(5)
    want = linear_cka(x, y)
    got = linear_cka(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    assert got == pytest.approx(want, abs=1e-5)
    assert rbf_cka(torch.tensor(x), y) == pytest.approx(rbf_cka(x, y), abs=1e-12)


# ---- invariances --------------------------------------------------------------------------

ALL_CKA = [
    ("linear", lambda a, b: linear_cka(a, b)),
    ("linear-gram", lambda a, b: linear_cka(a, b, method="gram")),
    ("debiased", debiased_linear_cka),
    ("rbf-0.5", lambda a, b: rbf_cka(a, b, threshold=0.5)),
    ("rbf-debiased", lambda a, b: rbf_cka(a, b, debiased=True)),
]


@pytest.mark.parametrize("name,metric", ALL_CKA)
def test_self_similarity_is_one(name, metric):
    x, _ = _pair(6)
    assert metric(x, x) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("name,metric", ALL_CKA)
def test_invariant_to_orthogonal_transform(name, metric):
    x, y = _pair(7, p=10)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 10)))
    assert metric(x, x @ q) == pytest.approx(1.0, abs=1e-10)
    assert metric(x @ q, y) == pytest.approx(metric(x, y), abs=1e-10)


@pytest.mark.parametrize("name,metric", ALL_CKA)
def test_invariant_to_isotropic_scaling(name, metric):
    x, y = _pair(8)
    base = metric(x, y)
    assert metric(3.7 * x, y) == pytest.approx(base, abs=1e-10)
    assert metric(x, 0.01 * y) == pytest.approx(base, abs=1e-10)


def test_linear_cka_not_invariant_to_anisotropic_scaling():
    x, y = _pair(9)
    stretch = np.diag(np.linspace(0.1, 10, x.shape[1]))
    assert abs(linear_cka(x @ stretch, y) - linear_cka(x, y)) > 0.01


def test_symmetric():
    x, y = _pair(10)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    assert debiased_linear_cka(x, y) == pytest.approx(debiased_linear_cka(y, x), abs=1e-12)


# ---- bias -----------------------------------------------------------------------------------

def test_debiased_removes_bias_for_independent_features():
    """n = 24 samples of 1,000 independent Gaussian features: the biased estimator is close to
    1 though X and Y are independent; the debiased one is close to the true 0."""
    biased, debiased = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((24, 1000)), rng.standard_normal((24, 1000))
        biased.append(linear_cka(x, y))
        debiased.append(linear_cka(x, y, debiased=True))
    assert min(biased) > 0.9
    assert max(abs(v) for v in debiased) < 0.15
    assert abs(np.mean(debiased)) < 0.05


def test_torch_feature_path_matches_numpy_streaming_path():
    """The accelerator path (one shot, torch) and the CPU path (chunked numpy) of the
    feature-space statistics agree; run here on CPU tensors."""
    from transferlab.similarity import cka

    x, y = _pair(11, n=300, p=6, q=9)
    mx, my = x.mean(0), y.mean(0)
    ref = cka._feature_stats_numpy(x, y, mx, my)
    got = cka._feature_stats_torch(torch.tensor(x), torch.tensor(y), torch.tensor(mx),
                                   torch.tensor(my))
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_streaming_chunks_cover_every_row(monkeypatch):
    from transferlab.similarity import cka

    x, y = _pair(12, n=103, p=4, q=3)
    want = linear_cka(x, y, debiased=True, method="gram")
    monkeypatch.setattr(cka, "_CHUNK_ROWS", 10)  # 11 chunks, the last one of 3 rows
    assert linear_cka(x, y, debiased=True, method="features") == pytest.approx(want, abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_match_cpu():
    from transferlab.similarity import MinibatchCKA

    x, y = _pair(13, n=200)
    tx, ty = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")
    for debiased in (False, True):
        for method in ("features", "gram"):
            assert linear_cka(tx, ty, debiased=debiased, method=method) == pytest.approx(
                linear_cka(x, y, debiased=debiased, method=method), abs=1e-10)
    est = MinibatchCKA().update(tx, ty)
    assert est.result() == pytest.approx(linear_cka(x, y, debiased=True), abs=1e-10)


def test_float32_precision_agrees_with_float64_to_1e6():
    from transferlab.similarity import linear_cka

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 64)).astype(np.float32)
    y = np.maximum(x @ rng.standard_normal((64, 48)).astype(np.float32) / 8
                   + rng.standard_normal((3000, 48)).astype(np.float32), 0)
    exact = linear_cka(x, y, precision="float64")
    assert 0.1 < exact < 0.99
    assert abs(linear_cka(x, y, precision="float32") - exact) < 1e-6
    with pytest.raises(UserError, match=r"precision='half' is invalid: allowed are 'auto'"):
        linear_cka(x, y, precision="half")


def test_precision_follows_the_inputs(monkeypatch):
    """float32 inputs take the float32 path by default; float64 inputs stay float64."""
    import torch

    from transferlab.similarity import cka as cka_mod

    seen = []
    real = cka_mod._feature_stats_numpy
    monkeypatch.setattr(cka_mod, "_feature_stats_numpy",
                        lambda x, y, mx, my, dtype: seen.append(dtype) or real(x, y, mx, my, dtype))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 8))
    y = x @ rng.standard_normal((8, 6)) + rng.standard_normal((500, 6))
    v64 = cka_mod.linear_cka(x, y)
    v32 = cka_mod.linear_cka(x.astype(np.float32), y.astype(np.float32))
    vt = cka_mod.linear_cka(torch.from_numpy(x.astype(np.float32)),
                            torch.from_numpy(y.astype(np.float32)))
    vmix = cka_mod.linear_cka(x.astype(np.float32), y)
    assert seen == [np.float64, np.float32, np.float32, np.float64]
    assert abs(v32 - v64) < 1e-5 and vt == v32 and abs(vmix - v64) < 1e-5
