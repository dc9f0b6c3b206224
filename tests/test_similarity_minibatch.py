"""Minibatch CKA (Nguyen et al. 2021): exactness on one batch, convergence, layer matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.errors import UserError
from transferlab.similarity import MinibatchCKA, linear_cka


def _linear_gaussian(n, p=6, q=4, sigma=1.0, seed=0):
    """X ~ N(0, I_p), Y = X W + sigma E; population linear CKA in closed form:
    Sigma_xx = I, Sigma_xy = W, Sigma_yy = W^T W + sigma^2 I, so
    CKA = ||W||_F^2 / (sqrt(p) ||W^T W + sigma^2 I||_F)."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(100).standard_normal((p, q))
    x = rng.standard_normal((n, p))
    y = x @ w + sigma * rng.standard_normal((n, q))
    pop = (w**2).sum() / (np.sqrt(p) * np.linalg.norm(w.T @ w + sigma**2 * np.eye(q)))
    return x, y, pop


def test_single_batch_equals_full_batch_debiased_cka():
    x, y, _ = _linear_gaussian(50)
    est = MinibatchCKA().update(x, y)
    assert est.result() == pytest.approx(linear_cka(x, y, debiased=True), abs=1e-10)
    assert est.score_ == est.result()
    assert (est.n_batches_, est.n_samples_seen_) == (1, 50)


def test_converges_to_population_and_full_batch_value():
    x, y, pop = _linear_gaussian(40_000)
    full = linear_cka(x, y, debiased=True)
    est = MinibatchCKA()
    errors = {}
    for i, start in enumerate(range(0, len(x), 200), start=1):
        est.update(x[start:start + 200], y[start:start + 200])
        if i in (2, 200):
            errors[i] = abs(est.result() - pop)
    assert est.n_batches_ == 200 and est.n_samples_seen_ == 40_000
    assert abs(full - pop) < 0.01
    assert abs(est.result() - full) < 0.01
    assert errors[200] < errors[2]


def test_layer_matrix_matches_pairwise_estimates():
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((300, p)) for p in (3, 8)]
    ys = [xs[0] @ rng.standard_normal((3, 5)) + rng.standard_normal((300, 5)),
          rng.standard_normal((300, 2)), xs[1][:, :4]]
    matrix = MinibatchCKA()
    singles = {(i, j): MinibatchCKA() for i in range(2) for j in range(3)}
    for s in range(0, 300, 100):
        matrix.update([a[s:s + 100] for a in xs], [b[s:s + 100] for b in ys])
        for (i, j), est in singles.items():
            est.update(xs[i][s:s + 100], ys[j][s:s + 100])
    got = matrix.result()
    assert got.shape == (2, 3)
    for (i, j), est in singles.items():
        assert got[i, j] == pytest.approx(est.result(), abs=1e-12)
    assert matrix.n_features_x_ == [3, 8] and matrix.n_features_y_ == [5, 2, 4]


def test_same_list_for_both_sides_gives_symmetric_matrix_with_unit_diagonal():
    rng = np.random.default_rng(2)
    layers = [torch.tensor(rng.standard_normal((64, p))) for p in (4, 9, 2)]
    est = MinibatchCKA().update(layers, layers)
    got = est.result()
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-12)
    np.testing.assert_allclose(got, got.T, atol=1e-12)
    other = MinibatchCKA().update(layers, [t.clone() for t in layers]).result()
    np.testing.assert_allclose(got, other, atol=1e-12)


def test_errors():
    x, y, _ = _linear_gaussian(20)
    with pytest.raises(UserError, match="seen no batches"):
        MinibatchCKA().result()
    with pytest.raises(UserError, match="at least 4 samples per batch"):
        MinibatchCKA().update(x[:3], y[:3])
    est = MinibatchCKA().update(x[:10], y[:10])
    with pytest.raises(UserError, match="same layers in the same order"):
        est.update(x[10:, :3], y[10:])
    with pytest.raises(UserError, match=r"Y\[1\] has 9 samples"):
        MinibatchCKA().update([x[:10]], [y[:10], y[:9]])
    with pytest.raises(UserError, match="empty list"):
        MinibatchCKA().update([], y)
    dead = MinibatchCKA().update([x[:10], np.ones((10, 3))], y[:10])
    assert np.isnan(dead.score_[1, 0])
    with pytest.raises(UserError, match=r"X layer\(s\) \[1\] have no variance"):
        dead.result()
