"""The linear probe's L2 path on a subsample of a large training set."""

from __future__ import annotations

import pytest
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
    # the path on 300 training rows, the polish on all 1,000 + the 200 validation rows
    assert set(seen) == {300, 1200}
    assert seen[0] == 300 and seen[-1] == 1200
    assert out["l2_selection"] == "val" and out["refit_examples"] == 1200
    # The polish converges to train + val's optimum at the picked L2, whatever the
    # (differently centred) subsample fit it started from: same as a fit from zero.
    # (fit_probe solves on standardised features x / s and writes W / s into the head)
    ref = _Probe(12, 4)
    # the final fit: every labelled example (train + val), standardised by the train spread
    xs, xvs, s = lp.standardized_features(x, xv)
    lp.fit_logistic(torch.cat([xs, xvs]), torch.cat([y, yv]), ref.head, out["l2"], max_iter=500)
    with torch.no_grad():
        ref.head.weight.div_(s)
    torch.testing.assert_close(model.head.weight, ref.head.weight, rtol=0, atol=2e-3)
    # (the bias, of size ~2 here, absorbs the centring: 1e-3 relative is both fits' tolerance)
    torch.testing.assert_close(model.head.bias, ref.head.bias, rtol=2e-3, atol=2e-3)


def test_small_training_sets_run_the_path_on_every_example(monkeypatch):
    x, y = _problem(400)
    xv, yv = _problem(100, seed=1)
    seen = _rows_seen(monkeypatch)
    lp.fit_probe(_Probe(12, 4), x, y, xv, yv)
    assert set(seen) == {400, 500}  # the path on the train split, the refit on train + val


def test_a_tiny_validation_split_chooses_l2_by_cv_and_refits_on_every_label():
    """k = 10 per class (8 train + 2 val, the sampler's split): L2 by 5-fold CV over the
    40 labelled examples, then the final head is the fit on all 40 at that L2."""
    x, y = _problem(32, d=30, seed=2)
    xv, yv = _problem(8, d=30, seed=3)
    model = _Probe(30, 4)
    out = lp.fit_probe(model, x, y, xv, yv)
    assert out["l2_selection"].startswith("cv-") and out["refit_examples"] == 40
    assert out["l2"] in lp.L2_GRID and 0.0 <= out["val_acc"] <= 1.0
    ref = _Probe(30, 4)
    # the probe solves on standardised features (the train split's spread s), the penalty
    # on the weights of x / s: compare objectives there (our head's W / s times s)
    xs, xvs, sc = lp.standardized_features(x, xv)
    xa, ya = torch.cat([xs, xvs]), torch.cat([y, yv])
    lp.fit_logistic(xa, ya, ref.head, out["l2"], max_iter=2000)
    # the optimum is flat here (separable classes): compare the objective on all 40
    got = _objective(xa, ya, model.head.weight.detach() * sc, model.head.bias.detach(),
                     out["l2"])
    want = _objective(xa, ya, ref.head.weight.detach(), ref.head.bias.detach(), out["l2"])
    assert got == pytest.approx(want, abs=1e-5)
    # and the train-only optimum is a different, worse fit of the 40 (the refit moved it)
    tr = _Probe(30, 4)
    lp.fit_logistic(xs, y, tr.head, out["l2"], max_iter=2000)
    assert _objective(xa, ya, tr.head.weight.detach(), tr.head.bias.detach(), out["l2"]) \
        > want + 1e-3
    # The CV choice is the one an independent computation of the CV accuracies makes.
    accs = []
    for lam in lp.L2_GRID:
        hits = 0.0
        folds = lp.cv_folds(ya)
        for tr, va in folds:
            p = lp.LogisticPath(xa[tr], ya[tr], 4, precondition=False)
            for lam2 in lp.L2_GRID:  # the same warm-started path up to lam
                p.fit(lam2, max_iter=lp.PATH_ITERS)
                if lam2 == lam:
                    break
            hits += (p.logits(xa[va]).argmax(1) == ya[va]).float().mean().item() / len(folds)
        accs.append(hits)
    assert out["val_acc"] == pytest.approx(max(accs), abs=1e-6)
    assert accs[lp.L2_GRID.index(out["l2"])] == pytest.approx(max(accs), abs=1e-6)
    # folds are stratified and cover every example once
    folds = lp.cv_folds(ya)
    held = torch.cat([va for _, va in folds]).sort().values
    assert len(folds) == 5 and torch.equal(held, torch.arange(40))
    per_fold = torch.stack([torch.bincount(ya[va], minlength=4) for _, va in folds])
    for tr, va in folds:
        assert set(tr.tolist()).isdisjoint(va.tolist()) and len(tr) + len(va) == 40
    # stratified: each class is dealt evenly over the folds
    assert int((per_fold.max(0).values - per_fold.min(0).values).max()) <= 1
    assert all(torch.equal(a[1], b[1]) for a, b in zip(folds, lp.cv_folds(ya)))  # fixed


def test_a_given_l2_still_refits_on_train_and_val_and_reports_held_out_accuracy():
    x, y = _problem(200)
    xv, yv = _problem(60, seed=1)
    model = _Probe(12, 4)
    out = lp.fit_probe(model, x, y, xv, yv, l2=1e-2)
    assert out["l2"] == 1e-2 and out["l2_selection"] == "given" and out["refit_examples"] == 260
    ref = _Probe(12, 4)
    xs, xvs, sc = lp.standardized_features(x, xv)  # the probe's units-free features
    lp.fit_logistic(torch.cat([xs, xvs]), torch.cat([y, yv]), ref.head, 1e-2, max_iter=500)
    with torch.no_grad():
        ref.head.weight.div_(sc)
    torch.testing.assert_close(model.head.weight, ref.head.weight, rtol=0, atol=2e-3)
    # refit=False (for callers that still choose on val): the fit of the train split alone
    kept = _Probe(12, 4)
    out = lp.fit_probe(kept, x, y, xv, yv, l2=1e-2, refit=False)
    assert out["refit_examples"] == 200
    train_only = _Probe(12, 4)
    lp.fit_logistic(xs, y, train_only.head, 1e-2, max_iter=500)
    with torch.no_grad():
        train_only.head.weight.div_(sc)
    torch.testing.assert_close(kept.head.weight, train_only.head.weight, rtol=0, atol=2e-3)


def test_the_subsample_is_fixed_by_the_data():
    x, y = _problem(20_000)
    a, ya = lp._path_subsample(x, y)
    b, yb = lp._path_subsample(x, y)
    assert len(ya) == lp.PATH_MAX_SAMPLES and torch.equal(a, b) and torch.equal(ya, yb)


def _objective(x, y, w, b, l2):
    z = x.double() @ w.double().t() + b.double()
    return (torch.nn.functional.cross_entropy(z, y) + 0.5 * l2 * w.double().pow(2).sum()).item()


def _ill_conditioned(n: int, d: int = 10, k: int = 3, seed: int = 0):
    """Features whose scales span 1e-2..1e2 (a plain L-BFGS crawls along the small ones)."""
    x, y = _problem(n, d, k, seed)
    return x * torch.logspace(-2, 2, d), y


def _scipy_fit(x, y, k, l2):
    """An independent solver of the same objective: scipy's L-BFGS-B in float64."""
    import numpy as np
    from scipy.optimize import minimize

    xd, yd = x.double().numpy(), y.numpy()
    n, d = xd.shape
    onehot = np.eye(k)[yd]

    def f(theta):
        w, b = theta[:k * d].reshape(k, d), theta[k * d:]
        z = xd @ w.T + b
        z -= z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1, keepdims=True))
        p = np.exp(z - lse)
        loss = -(onehot * (z - lse)).sum() / n + 0.5 * l2 * (w ** 2).sum()
        gz = (p - onehot) / n
        return loss, np.concatenate([(gz.T @ xd + l2 * w).ravel(), gz.sum(0)])

    res = minimize(f, np.zeros(k * d + k), jac=True, method="L-BFGS-B",
                   options={"maxiter": 20_000, "ftol": 1e-15, "gtol": 1e-10})
    return res.fun


@pytest.mark.parametrize("n,d", [(600, 10), (40, 60)])  # full rank, and D > N
def test_the_preconditioned_fit_reaches_the_same_optimum_as_an_independent_solver(n, d):
    x, y = _ill_conditioned(n, d) if d <= n else _problem(n, d, 3)
    l2 = 1e-3
    ref = _scipy_fit(x, y, 3, l2)
    for pre in (True, False):
        path = lp.LogisticPath(x, y, 3, precondition=pre)
        path.fit(l2, max_iter=3000, tolerance_grad=1e-9)
        lin = nn.Linear(x.shape[1], 3)
        path.write_to(lin)
        got = _objective(x, y, lin.weight.detach(), lin.bias.detach(), l2)
        assert got == pytest.approx(ref, abs=1e-5), pre


def test_preconditioning_converges_in_fewer_iterations_on_ill_conditioned_features():
    x, y = _ill_conditioned(2000)
    l2 = 1e-4
    ref = _scipy_fit(x, y, 3, l2)
    gaps = {}
    for pre in (True, False):
        path = lp.LogisticPath(x, y, 3, precondition=pre)
        path.fit(l2, max_iter=30)
        lin = nn.Linear(x.shape[1], 3)
        path.write_to(lin)
        gaps[pre] = _objective(x, y, lin.weight.detach(), lin.bias.detach(), l2) - ref
    # measured: 1e-4 preconditioned against 0.12 plain after 30 iterations
    assert gaps[True] < 1e-3 and gaps[False] > 50 * gaps[True]


def test_preconditioning_is_chosen_by_its_cost():
    assert lp._worth_preconditioning(26_463, 128, 5)  # the benchmark's convnet head
    assert lp._worth_preconditioning(770, 384, 77)  # MiniLM on BANKING77, 10 per class
    assert not lp._worth_preconditioning(26_463, 1280, 10)  # EfficientNet-Lite0's features
    assert not lp._worth_preconditioning(50, 1280, 10)  # few-shot: D >> N
    assert not lp._worth_preconditioning(0, 8, 2)
