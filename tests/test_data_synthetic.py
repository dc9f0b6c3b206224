"""The ``synthetic`` source: the correlated hidden-manifold model against its closed forms."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from transferlab.data import TaskSpec, make_task
from transferlab.data.synthetic import SyntheticKeys, generator, sample
from transferlab.errors import UserError

BIG = dict(dim=400, latent=200)  # 80,000 entries: correlations to +-0.011 (3 s.e. = 0.011)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).mean())


def test_feature_and_teacher_overlaps_match_eta_and_q():
    src = generator(SyntheticKeys(**BIG, n_classes=10))
    for eta, q in [(0.0, 0.3), (0.5, 0.9), (0.8, 0.0)]:
        tgt = generator(SyntheticKeys(role="target", eta=eta, q=q, n_classes=10, **BIG))
        f, ft = src.maps[0], tgt.maps[0]
        tol = 3 / math.sqrt(f.size)
        assert abs(_corr(f, ft) - eta) < tol + 0.005  # E[F_ij F_t,ij] = eta
        assert abs(ft.var() - 1) < 0.02  # eta^2 + (1 - eta^2) = 1: same scale as the source
        # teacher rows: E[w_i w_t,i] = q (10 x 200 entries)
        assert abs(_corr(src.teacher, tgt.teacher) - q) < 3 / math.sqrt(src.teacher.size) + 0.01


def test_rho_replaces_exactly_that_fraction_of_latent_directions():
    keys = SyntheticKeys(role="target", eta=1.0, rho=0.25, **BIG)
    src, tgt = generator(SyntheticKeys(**BIG)), generator(keys)
    assert keys.replaced == 50 and len(tgt.replaced) == 50
    kept = np.setdiff1d(np.arange(200), tgt.replaced)
    # eta = 1: kept columns are the source's exactly, replaced ones are independent
    assert np.array_equal(tgt.maps[0][:, kept], src.maps[0][:, kept])
    per_col = (src.maps[0] * tgt.maps[0]).mean(0)[tgt.replaced]
    assert abs(per_col.mean()) < 3 / math.sqrt(400 * 50)
    assert abs(tgt.maps[0][:, tgt.replaced].var() - 1) < 0.05
    # with eta < 1 the overall overlap is eta (1 - rho)
    mixed = generator(dataclasses.replace(keys, eta=0.6))
    assert abs(_corr(src.maps[0], mixed.maps[0]) - 0.6 * 0.75) < 0.015


def test_identical_pair_shares_generator_and_teacher_but_not_examples():
    src_keys = SyntheticKeys(n=300, hidden=30)
    tgt_keys = SyntheticKeys(role="target", n=300, hidden=30)  # eta = q = 1, rho = 0
    src, tgt = generator(src_keys), generator(tgt_keys)
    assert all(np.array_equal(a, b) for a, b in zip(src.maps, tgt.maps))
    assert np.array_equal(src.teacher, tgt.teacher)
    xs, ys, cs = sample(src_keys, "train")
    xt, yt, ct = sample(tgt_keys, "train")
    assert not np.allclose(cs, ct)  # independent latents
    # the target's labels are the source teacher's on the target latents
    assert np.array_equal(yt, (ct @ src.teacher > 0).astype(np.int64))
    # inputs recomputed from the latents by the two-layer map (independent arithmetic)
    h = np.tanh(np.tanh(ct @ src.maps[0].T / math.sqrt(20)) @ src.maps[1].T / math.sqrt(30))
    np.testing.assert_allclose(xt, h.astype(np.float32), rtol=0, atol=1e-6)
    assert xt.dtype == np.float32 and xt.shape == (300, 100)


def test_deterministic_nested_in_n_and_seeded():
    a = sample(SyntheticKeys(n=500, gen_seed=3), "train")
    b = sample(SyntheticKeys(n=500, gen_seed=3), "train")
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    small = sample(SyntheticKeys(n=120, gen_seed=3), "train")
    assert all(np.array_equal(u[:120], v) for u, v in zip(a, small))  # nested
    other = sample(SyntheticKeys(n=500, gen_seed=4), "train")
    assert not np.allclose(a[0], other[0])
    test_a = sample(SyntheticKeys(n=500, gen_seed=3), "test")
    test_b = sample(SyntheticKeys(n=120, gen_seed=3), "test")
    assert np.array_equal(test_a[0], test_b[0]) and len(test_a[0]) == 4000  # n does not move it


def test_labels_noise_and_multiclass():
    keys = SyntheticKeys(n=4000, n_classes=4)
    x, y, c = sample(keys, "train")
    gen = generator(keys)
    unit = gen.teacher / np.linalg.norm(gen.teacher, axis=1, keepdims=True)
    assert np.array_equal(y, (c @ unit.T).argmax(1))
    assert set(np.unique(y)) == {0, 1, 2, 3}
    # label noise: P(flip) for a sign teacher with N(0, 1) pre-activation and noise s is
    # arctan(s) / pi (the angle between the clean and noisy directions)
    noisy = SyntheticKeys(n=20000, noise=0.5)
    _, yn, cn = sample(noisy, "train")
    clean = (cn @ generator(noisy).teacher > 0).astype(np.int64)
    flip = float((yn != clean).mean())
    assert abs(flip - math.atan(0.5) / math.pi) < 3 * math.sqrt(0.15 * 0.85 / 20000)


def test_task_strings_splits_and_errors():
    task = make_task("synthetic:role=target:eta=0.5:n=200:seed=0")
    assert task.modality == "vector" and task.input_shape == (100,)
    assert task.n_train + task.n_val == 200 and task.n_test == 4000
    assert task.x_train.dtype == torch.float32
    assert str(task.spec) == "synthetic:role=target:eta=0.5:n=200"
    again = make_task("synthetic:role=target:eta=0.5:n=200")
    assert again.fingerprint == task.fingerprint
    assert make_task("synthetic:role=target:eta=0.4:n=200").fingerprint != task.fingerprint
    cases = {
        "synthetic:role=target:eta=1.5": r"^eta=1.5 is invalid: allowed is a number in \[0, 1\]",
        "synthetic:n=0": r"^n=0 is invalid: allowed is an integer >= 1",
        "synthetic:eta=0.5": r"^eta=0.5 is invalid: allowed is only with role=target",
        "synthetic:colour=red": r"role, dim, latent, hidden, n_classes, eta, q, rho, n, n_test, "
                                r"noise, gen_seed \(source 'synthetic'\); fix 'colour=red'",
        "synthetic:role=both": r"^role='both' is invalid: allowed is source or target",
        "synthetic:n=3:n_classes=5": r"^n=3 is invalid: allowed is at least n_classes=5",
        "synthetic:role=target:rho=-0.1": r"^rho=-0.1 is invalid",
        "synthetic:noise=-1": r"^noise=-1.0 is invalid: allowed is a finite number >= 0",
    }
    for text, msg in cases.items():
        with pytest.raises(UserError, match=msg):
            TaskSpec.parse(text)
