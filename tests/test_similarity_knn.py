"""k-NN overlap (Doimo et al.): known answers, invariances, chance level, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from transferlab.errors import UserError
from transferlab.similarity import get_metric, knn_overlap

RNG = np.random.default_rng(0)


def _brute(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Independent implementation: scipy distances, per-sample Python sets."""
    from scipy.spatial.distance import cdist

    def nn(a):
        d = cdist(a, a)
        np.fill_diagonal(d, np.inf)
        return [set(np.argsort(row, kind="stable")[:k].tolist()) for row in d]

    return float(np.mean([len(p & q) / k for p, q in zip(nn(x), nn(y))]))


def test_hand_computed_tiny_case():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    y = np.array([[0.0], [1.0], [7.0], [3.0]])  # samples 2 and 3 swap places
    # k=1: X's nearest are (1, 0, 1, 2), Y's (1, 0, 3, 1): two of four agree
    assert knn_overlap(x, y, k=1) == 0.5
    # k=2: X {1,2} {0,2} {0,1} {1,2}; Y {1,3} {0,3} {1,3} {0,1}: one shared each
    assert knn_overlap(x, y, k=2) == 0.5
    assert knn_overlap(x, y, k=3) == 1.0  # every other sample is a neighbour


def test_identity_rotation_scaling_translation_give_one():
    x = RNG.standard_normal((200, 12))
    assert knn_overlap(x, x) == 1.0
    q = ortho_group.rvs(12, random_state=1)
    assert knn_overlap(x, 3.5 * x @ q + 2.0) == 1.0
    # a wider Y that embeds X isometrically: same distances
    assert knn_overlap(x, np.hstack([x, np.zeros((200, 5))]) @ ortho_group.rvs(
        17, random_state=2), k=10) == 1.0
    assert knn_overlap(torch.tensor(x, dtype=torch.float32), x) == 1.0


def test_independent_representations_sit_at_chance_k_over_n():
    n, k = 600, 30
    vals = [knn_overlap(RNG.standard_normal((n, 8)), RNG.standard_normal((n, 8)), k=k)
            for _ in range(3)]
    chance = k / (n - 1)
    # each sample's shared count is ~ hypergeometric(n-1, k, k): sd of the mean ~ 0.002
    assert abs(np.mean(vals) - chance) < 0.01


def test_agrees_with_brute_force_and_is_symmetric():
    x = RNG.standard_normal((150, 6))
    y = x + 0.5 * RNG.standard_normal((150, 6))  # partly shared structure
    for k in (1, 5, 30):
        v = knn_overlap(x, y, k=k)
        assert v == pytest.approx(_brute(x, y, k), abs=1e-12)
        assert v == pytest.approx(knn_overlap(y, x, k=k), abs=1e-12)
        assert 0.0 < v < 1.0


def test_registered_and_errors():
    assert get_metric("knn_overlap") is knn_overlap
    x = RNG.standard_normal((20, 3))
    with pytest.raises(UserError, match=r"^k=20 is invalid: allowed is at most n_samples - 1 "
                                        r"= 19"):
        knn_overlap(x, x, k=20)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(UserError, match=rf"^k={bad!r} is invalid: allowed is an integer"):
            knn_overlap(x, x, k=bad)
