"""The advisor's rules, calibration and regret on synthetic cases with known answers
(no model, no training: milliseconds)."""

from __future__ import annotations

import math

import pytest

from transferlab.advise import calibrate
from transferlab.advise.rules import (Candidate, Thresholds, candidate_set, guide_rule, rank,
                                      scenario)
from transferlab.errors import UserError

L = 7


def _first(size, sim, best_depth=3, th=Thresholds.guide()):
    cands = candidate_set(L, best_depth, 10, 0.05)
    return rank(cands, size, sim, best_depth, L, th)


def test_scenario_lines_are_inclusive_at_the_threshold():
    th = Thresholds(size_k=100, retained_min=0.9)
    assert scenario(99, 0.95, th) == ("small", "similar")
    assert scenario(100, 0.9, th) == ("large", "similar")
    assert scenario(100, 0.8999, th) == ("large", "dissimilar")


def test_each_scenario_gets_the_guides_protocol_first():
    assert _first("small", "similar")[0].protocol == "linear-probe"
    # "features from earlier layers": the best probe depth, measured
    assert _first("small", "dissimilar", best_depth=3)[0].protocol == "probe:3"
    top = _first("large", "similar")[0]
    assert (top.protocol, top.lr_mult) == ("finetune", 0.1)
    dis = _first("large", "dissimilar")[0]
    assert (dis.protocol, dis.lr_mult) == ("finetune", 1.0)
    # a fitted table overrides the guide's first choice, the guide's order follows
    th = Thresholds.guide(small_similar="scratch")
    order = _first("small", "similar", th=th)
    assert [c.label for c in order[:2]] == ["scratch", "linear-probe"]
    # when the top features are the best ones, the probe IS the linear probe
    assert _first("small", "dissimilar", best_depth=L)[0].protocol == "linear-probe"


def test_ranking_is_a_permutation_of_the_candidates():
    cands = candidate_set(L, 4, 10, 0.05)
    for size in ("small", "large"):
        for sim in ("similar", "dissimilar"):
            order = rank(cands, size, sim, 4, L, Thresholds())
            assert order == rank(cands, size, sim, 4, L, Thresholds())  # deterministic
            assert sorted(c.label for c in order) == sorted(c.label for c in cands)
    labels = [c.label for c in cands]
    assert len(set(labels)) == len(labels)
    assert {"linear-probe", "probe:4", "probe:3", "freeze:3", "freeze:5", "scratch",
            "finetune (lr_mult 0.1)", "finetune (lr_mult 1)", "lp-ft"} == set(labels)
    lpft = next(c for c in cands if c.protocol == "lp-ft")
    assert (lpft.lr_mult, lpft.epochs, lpft.solver) == (0.1, 10, False)
    # a fitted table can make it the first choice
    th = Thresholds.guide(large_similar="lp-ft")
    assert rank(cands, "large", "similar", 4, L, th)[0].protocol == "lp-ft"


@pytest.mark.parametrize("kwargs", [{"size_k": 1}, {"retained_min": 1.5},
                                    {"large_similar": "sgd"}, {"size_k": True}])
def test_thresholds_refuse_bad_values(kwargs):
    with pytest.raises(UserError, match=next(iter(kwargs))):
        Thresholds(**kwargs)


def _case(name, k, retained, best, acc, similar=True, best_depth=3):
    acc = {lab: (0.9 if lab == best else a) for lab, a in acc.items()}
    return {"name": name, "k": k, "retained": retained, "best_depth": best_depth,
            "num_blocks": L, "nominal_similar": similar, "acc": acc,
            "val_acc": {lab: a - 0.02 for lab, a in acc.items()}}


ALL = [c.label for c in candidate_set(L, 3, 10, 0.05)]


def _cases():
    base = {lab: 0.5 for lab in ALL}
    return [_case("ss", 10, 0.99, "linear-probe", base),
            _case("sd", 10, 0.60, "probe:3", base, similar=False),
            _case("ls", 500, 0.98, "finetune (lr_mult 0.1)", base),
            _case("ld", 500, 0.55, "finetune (lr_mult 1)", base, similar=False)]


def test_fit_separates_the_four_scenarios_with_zero_regret():
    th, info = calibrate.fit(_cases())
    assert info["total_regret"] == 0
    # the lines sit between the cases: geometric middle of (10, 500], middle of (0.6, 0.98]
    assert th.size_k == round(math.sqrt(10 * 500))
    assert th.retained_min == pytest.approx((0.60 + 0.98) / 2)
    # every scenario keeps the guide's family: it is the best in each
    assert (th.small_similar, th.small_dissimilar, th.large_similar, th.large_dissimilar) == \
        ("linear-probe", "probe", "finetune-0.1", "finetune-1")
    rows = calibrate.evaluate(_cases(), th)
    assert [r["advisor_regret"] for r in rows] == [0, 0, 0, 0]


def test_regret_and_baselines_by_hand():
    th = Thresholds.guide(size_k=71, retained_min=0.79)
    rows = {r["case"]: r for r in calibrate.evaluate(_cases(), th)}
    # the guide probes the middle depth (7 // 2 = 3) for small dissimilar data: right here;
    # it fine-tunes large dissimilar data with the smaller lr: 0.9 - 0.5 lost
    assert rows["sd"]["guide"] == "probe:3" and rows["sd"]["guide_regret"] == 0
    assert rows["ld"]["guide"] == "finetune (lr_mult 0.1)"
    assert rows["ld"]["guide_regret"] == pytest.approx(0.4)
    assert rows["ss"]["always_finetune_regret"] == pytest.approx(0.4)
    s = calibrate.summary(list(rows.values()))
    assert s["advisor"]["mean_regret"] == 0 and s["advisor"]["within_1pt"] == 1
    assert s["always_finetune"]["mean_regret"] == pytest.approx(0.3)  # 3 of 4 lose 0.4
    assert s["guide"]["within_1pt"] == pytest.approx(0.75)


def test_fit_learns_a_scenarios_family_from_its_cases():
    """Known answer: where scratch is measured best, the fitted table says scratch."""
    base = {lab: 0.5 for lab in ALL}
    cases = _cases()
    cases[3] = _case("ld", 500, 0.55, "scratch", base, similar=False)
    th, info = calibrate.fit(cases)
    assert th.large_dissimilar == "scratch" and info["total_regret"] == 0
    assert th.small_similar == "linear-probe"


def test_fit_chooses_on_validation_and_ignores_test_accuracy():
    """Shuffling (or inverting) every case's test accuracies changes no fitted threshold;
    changing the validation accuracies does. A case without validation accuracies is
    refused, never fitted on test."""
    import random
    th, info = calibrate.fit(_cases())
    assert info["metric"] == "val_acc"
    for seed in range(3):
        cases = _cases()
        rng = random.Random(seed)
        for c in cases:
            vals = list(c["acc"].values())
            rng.shuffle(vals)
            c["acc"] = dict(zip(c["acc"], vals))
        assert calibrate.fit(cases)[0] == th
    base = {lab: 0.5 for lab in ALL}
    cases = _cases()
    cases[3]["val_acc"] = {lab: (0.9 if lab == "scratch" else 0.5) for lab in base}
    assert calibrate.fit(cases)[0].large_dissimilar == "scratch"
    cases[0].pop("val_acc")
    with pytest.raises(UserError, match="val_acc"):
        calibrate.fit(cases)


def test_guide_rule_is_fixed_whatever_the_evidence():
    th = Thresholds(size_k=50)  # the guide's rule ignores the fitted table
    assert guide_rule(10, True, L, th) == "linear-probe"
    assert guide_rule(10, False, L, th) == "probe:3"
    assert guide_rule(50, False, L, th) == "finetune (lr_mult 0.1)"


def test_candidate_labels_and_solver_flags():
    assert Candidate("probe:2").solver and Candidate("linear-probe").solver
    assert not Candidate("finetune", 0.1, 10, 0.05).solver
    assert Candidate("finetune", 1.0).label == "finetune (lr_mult 1)"
