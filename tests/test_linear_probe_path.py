"""The linear probe's L2 path on a subsample of a large training set."""

from __future__ import annotations

import torch
from torch import nn

import transferlab.protocols.linear_probe as lp


def _problem(n: int, d: int = 12, k: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 1.5
    y = torch.randint(0, k, (n,), generator=g)
    x = centers[y] + torch.randn(n, d, generator=g) + 3.0  # off-centre: the bias matters
    return x, y


class _Probe(nn.Module):  # the head_input/head_linear contract: a model with .head
    def __init__(self, d: int, k: int):
        super().__init__()
        self.head = nn.Linear(d, k)


def _rows_seen(monkeypatch):
    seen = []
    orig = lp._loss_grad

    def spy(xc, *args):
        seen.append(len(xc))
        return orig(xc, *args)

    monkeypatch.setattr(lp, "_loss_grad", spy)
    return seen


def test_the_path_reads_a_subsample_and_the_polish_every_example(monkeypatch):
    monkeypatch.setattr(lp, "PATH_MAX_SAMPLES", 300)
    x, y = _problem(1000)
    xv, yv = _problem(200, seed=1)
    seen = _rows_seen(monkeypatch)
    model = _Probe(12, 4)
    out = lp.fit_probe(model, x, y, xv, yv)
    assert set(seen) == {300, 1000}  # the path on 300 rows, the polish on all 1,000
    assert seen[0] == 300 and seen[-1] == 1000
    # The polish converges to the full data's optimum at the picked L2, whatever the
    # (differently centred) subsample fit it started from: same as a fit from zero.
    ref = _Probe(12, 4)
    lp.fit_logistic(x, y, ref.head, out["l2"], max_iter=500)
    torch.testing.assert_close(model.head.weight, ref.head.weight, rtol=0, atol=2e-3)
    torch.testing.assert_close(model.head.bias, ref.head.bias, rtol=0, atol=2e-3)


def test_small_training_sets_run_the_path_on_every_example(monkeypatch):
    x, y = _problem(400)
    xv, yv = _problem(100, seed=1)
    seen = _rows_seen(monkeypatch)
    lp.fit_probe(_Probe(12, 4), x, y, xv, yv)
    assert set(seen) == {400}


def test_the_subsample_is_fixed_by_the_data():
    x, y = _problem(20_000)
    a, ya = lp._path_subsample(x, y)
    b, yb = lp._path_subsample(x, y)
    assert len(ya) == lp.PATH_MAX_SAMPLES and torch.equal(a, b) and torch.equal(ya, yb)
