"""Known answers of transferlab.metrics, and agreement with torchmetrics' ECE."""

import math

import numpy as np
import pytest
import torch

from transferlab.errors import UserError
from transferlab.metrics import (accuracy, brier, disagreement, ece, ensemble_metrics, nll,
                                 plot_reliability, reliability_bins)


def _onehot(y, c):
    return torch.nn.functional.one_hot(torch.as_tensor(y), c).double()


def test_one_hot_correct_predictions_have_zero_nll_brier_ece():
    y = torch.tensor([0, 2, 1, 2])
    p = _onehot(y, 3)
    assert nll(p, y) == 0.0
    assert brier(p, y) == 0.0
    assert ece(p, y) == 0.0
    assert accuracy(p, y) == 1.0


def test_hand_computed_small_case():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    assert nll(p, y) == pytest.approx(-(math.log(0.7) + math.log(0.4)) / 2, abs=1e-12)
    b = ((0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2) + (0.6 ** 2 + 0.5 ** 2 + 0.1 ** 2)) / 2
    assert brier(p, y) == pytest.approx(b, abs=1e-12)
    # confidences 0.7 (correct, bin [0.667, 0.733)) and 0.5 (wrong, bin [0.467, 0.533))
    assert ece(p, y) == pytest.approx((0.3 + 0.5) / 2, abs=1e-12)
    assert accuracy(p, y) == 0.5


def test_perfectly_calibrated_toy_set_has_ece_zero():
    # confidence 0.8 on 10 samples, 8 of them correct; confidence 0.6 on 5, 3 correct
    p = torch.tensor([[0.8, 0.2]] * 10 + [[0.6, 0.4]] * 5, dtype=torch.float64)
    y = torch.tensor([0] * 8 + [1] * 2 + [0] * 3 + [1] * 2)
    assert ece(p, y) == pytest.approx(0.0, abs=1e-12)
    assert ece(p, 1 - y) > 0.3  # the same confidences on flipped labels are miscalibrated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_agrees_with_torchmetrics(seed):
    tm = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(500, 7, generator=g) * (1 + seed)
    p = torch.softmax(logits, 1)
    p[:3] = _onehot([0, 1, 2], 7).float()  # confidence exactly 1: torchmetrics' extra bin
    y = torch.randint(0, 7, (500,), generator=g)
    y[: 250] = p[: 250].argmax(1)          # a mix of right and wrong predictions
    want = float(tm.multiclass_calibration_error(p, y, num_classes=7, n_bins=15, norm="l1"))
    assert ece(p, y) == pytest.approx(want, abs=1e-6)


def test_disagreement_known_answers():
    y = torch.tensor([0, 1, 2])
    same = _onehot(y, 3)
    assert disagreement(torch.stack([same, same, same])) == 0.0
    # two members disagreeing on every sample: the one pair differs -> 1
    other = _onehot(torch.tensor([1, 2, 0]), 3)
    assert disagreement(torch.stack([same, other])) == 1.0
    # three members, votes (a, a, b) on one sample: 2 of 3 pairs differ
    p = torch.stack([_onehot([0], 3), _onehot([0], 3), _onehot([1], 3)])
    assert disagreement(p) == pytest.approx(2 / 3)
    # brute force over pairs on random members
    q = torch.softmax(torch.randn(4, 50, 5, generator=torch.Generator().manual_seed(0)), -1)
    pred = q.argmax(-1)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    brute = np.mean([float((pred[i] != pred[j]).double().mean()) for i, j in pairs])
    assert disagreement(q) == pytest.approx(brute, abs=1e-12)


def test_ensemble_metrics_of_mean_and_members():
    g = torch.Generator().manual_seed(3)
    q = torch.softmax(torch.randn(3, 40, 4, generator=g) * 2, -1)
    y = torch.randint(0, 4, (40,), generator=g)
    m = ensemble_metrics(q, y)
    mean = q.double().mean(0)
    assert m["accuracy"] == pytest.approx(accuracy(mean, y))
    assert m["nll"] == pytest.approx(nll(mean, y))
    assert m["member_nll"] == pytest.approx(np.mean([nll(x, y) for x in q]))
    assert m["member_brier"] == pytest.approx(np.mean([brier(x, y) for x in q]))
    assert m["members"] == 3
    # the mean's NLL and Brier never exceed the members' mean (convexity)
    assert m["nll"] <= m["member_nll"] + 1e-12 and m["brier"] <= m["member_brier"] + 1e-12
    one = ensemble_metrics(q[:1], y)
    assert one["disagreement"] is None and one["nll"] == pytest.approx(one["member_nll"])


def test_reliability_bins_and_plot(tmp_path):
    p = torch.tensor([[0.8, 0.2]] * 10 + [[0.55, 0.45]] * 4, dtype=torch.float64)
    y = torch.tensor([0] * 8 + [1] * 2 + [0] * 2 + [1] * 2)
    b = reliability_bins(p, y, n_bins=10)
    assert b["count"].sum() == 14 and b["count"][8] == 10 and b["count"][5] == 4
    assert b["accuracy"][8] == pytest.approx(0.8) and b["confidence"][5] == pytest.approx(0.55)
    plot_reliability({"a": (p, y), "b": (p, 1 - y)}, tmp_path / "rel.png")
    assert (tmp_path / "rel.png").stat().st_size > 1000


@pytest.mark.parametrize("call, match", [
    (lambda: nll(torch.tensor([[0.5, 0.6]]), torch.tensor([0])), "not probabilities"),
    (lambda: nll(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0])), "NaN"),
    (lambda: brier(torch.ones(2, 1), torch.tensor([0])), "labels"),
    (lambda: accuracy(torch.tensor([[0.5, 0.5]]), torch.tensor([2])), "labels"),
    (lambda: disagreement(torch.ones(1, 3, 2) / 2), "members=1"),
    (lambda: ensemble_metrics(torch.ones(3, 2) / 2, torch.tensor([0, 1, 0])), "probs"),
    (lambda: ece(torch.ones(2, 2) / 2, torch.tensor([0, 1]), n_bins=0), "n_bins=0"),
])
def test_bad_input_is_one_user_error(call, match):
    with pytest.raises(UserError, match=match):
        call()
