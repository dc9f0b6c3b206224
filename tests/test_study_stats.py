"""The studies' statistics kit against known answers (textbook data, hand-worked examples)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from transferlab.errors import UserError
from transferlab.studies.kit.stats import (bootstrap_ci, fmt_p, holm, mean_std, pair_up,
                                           paired_family, paired_test, t_interval,
                                           welch_test)

# Student's sleep data (Cushny & Peebles 1905): extra sleep of 10 patients under two drugs.
# R: t.test(extra ~ group, data = sleep, paired = TRUE) gives t = -4.0621, df = 9,
# p-value = 0.002833, 95% CI of the mean difference (-2.4598858, -0.7001142), mean -1.58.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_mean_std_and_undefined_cases():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([5.0]) == (5.0, None)
    assert mean_std([]) == (None, None)


def test_t_interval_matches_the_sleep_data_textbook_answer():
    diff = np.subtract(DRUG2, DRUG1)
    lo, hi = t_interval(diff)
    assert lo == pytest.approx(0.7001142, abs=1e-6) and hi == pytest.approx(2.4598858, abs=1e-6)
    # A wider level gives a wider interval around the same mean.
    lo99, hi99 = t_interval(diff, 0.99)
    assert lo99 < lo and hi99 > hi and (lo99 + hi99) / 2 == pytest.approx(1.58)
    assert t_interval([1.0]) is None


def test_paired_t_test_matches_the_sleep_data_textbook_answer():
    r = paired_test(DRUG1, DRUG2, "t")
    assert r.n == 10 and r.mean_diff == pytest.approx(-1.58)
    assert r.statistic == pytest.approx(-4.0621, abs=1e-4)
    assert r.p == pytest.approx(0.002833, abs=1e-6)
    assert r.ci == pytest.approx((-2.4598858, -0.7001142), abs=1e-6)
    # Independent: the one-sample t-test of the differences against 0, by hand.
    d = np.subtract(DRUG1, DRUG2)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert r.statistic == pytest.approx(t) and r.p == pytest.approx(2 * st.t.sf(abs(t), 9))


def test_wilcoxon_exact_p_worked_by_hand():
    # Differences 1, 2, 3, -4, 5: ranks 1..5, W- = 4, W+ = 11. Of the 2^5 sign patterns,
    # 7 have W- <= 4 ({}, {1}, {2}, {3}, {4}, {1,2}, {1,3}), so the two-sided p = 14/32.
    x = [11.0, 12.0, 13.0, 6.0, 15.0]
    y = [10.0, 10.0, 10.0, 10.0, 10.0]
    r = paired_test(x, y, "wilcoxon")
    assert r.statistic == 4.0 and r.p == pytest.approx(14 / 32)
    # All five differences positive: only the empty set has W- = 0 -> p = 2/32.
    assert paired_test([2, 3, 4, 5, 6], [1, 1, 1, 1, 1], "wilcoxon").p == pytest.approx(2 / 32)


def test_paired_tests_without_spread_or_pairs_are_not_tested():
    one = paired_test([0.9], [0.8])
    assert one.n == 1 and one.p is None and one.statistic is None and one.ci is None
    assert one.status == "not tested" and "at least 3" in one.reason
    assert one.mean_diff == pytest.approx(0.1)
    # Two units, even far apart: too few for a test.
    two = paired_test([0.9, 0.95], [0.1, 0.2])
    assert two.status == "not tested" and two.p is None
    same = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.status == "not tested" and same.p is None and same.mean_diff == 0.0
    for method in ("t", "wilcoxon"):  # identical nonzero differences: zero variance
        shifted = paired_test([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], method)
        assert shifted.status == "not tested" and shifted.p is None
        assert shifted.statistic is None and "zero variance" in shifted.reason
    # Spread, three units: tested, the exact Wilcoxon p of three positive differences 2/8.
    r = paired_test([0.6, 0.75, 0.8], [0.5, 0.6, 0.7], "wilcoxon")
    assert r.status == "tested" and r.p == pytest.approx(0.25)
    assert fmt_p(None) == "not tested"
    # A family never calls a "not tested" row significant, however large its difference.
    rows = paired_family([("a", {0: 0.9, 1: 0.9}, {0: 0.1, 1: 0.1}),
                          ("b", {0: 0.9, 1: 0.8, 2: 0.7}, {0: 0.8, 1: 0.7, 2: 0.6})])
    assert [r["status"] for r in rows] == ["not tested", "not tested"]
    assert not any(r["higher"] or r["lower"] for r in rows)
    assert all(r["p_holm"] is None for r in rows)
    with pytest.raises(UserError, match=r"method='sign' is invalid: allowed is t or wilcoxon"):
        paired_test([1, 2], [1, 2], "sign")
    with pytest.raises(UserError, match=r"as many values as x \(2\)"):
        paired_test([1, 2], [1, 2, 3])


def test_welch_test_matches_the_textbook_formula():
    a, b = [19.1, 21.3, 20.2, 22.8, 18.9], [24.0, 25.1, 23.2, 26.8]
    r = welch_test(a, b)
    va, vb = np.var(a, ddof=1) / 5, np.var(b, ddof=1) / 4
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 4 + vb ** 2 / 3)  # Welch-Satterthwaite
    assert r.statistic == pytest.approx(t) and r.p == pytest.approx(2 * st.t.sf(abs(t), df))
    half = st.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert r.ci == pytest.approx((r.mean_diff - half, r.mean_diff + half))
    assert welch_test([1.0], [1.0, 2.0]).p is None
    assert welch_test([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]).status == "not tested"


def test_bootstrap_ci_approaches_the_normal_interval_for_a_large_sample():
    # For n = 400 draws the bootstrap distribution of the mean is close to normal with
    # sd = s / sqrt(n) (ddof 0): the percentile interval is about mean ± 1.96 sd.
    x = np.random.default_rng(1).normal(3.0, 2.0, 400)
    lo, hi = bootstrap_ci(x, n_resamples=4000)
    se = x.std() / math.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.15 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.15 * se)
    assert bootstrap_ci(x, n_resamples=500, seed=3) == bootstrap_ci(x, n_resamples=500, seed=3)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0) and bootstrap_ci([1.0]) is None


def test_holm_worked_by_hand():
    # m = 4. Sorted: 0.005 * 4 = 0.02; 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04,
    # raised to the running maximum 0.06. Back in input order:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Capped at 1; untestable entries stay out of the family (m = 2 here).
    assert holm([0.6, None, 0.2]) == [pytest.approx(0.6), None, pytest.approx(0.4)]
    assert holm([0.9, 0.8]) == [pytest.approx(1.0), pytest.approx(1.0)]
    assert holm([]) == [] and holm([None]) == [None]


def test_holm_is_never_below_the_raw_p_nor_above_bonferroni():
    p = np.random.default_rng(0).uniform(0, 0.2, 12)
    adj = holm(list(p))
    assert all(a >= q for a, q in zip(adj, p))
    assert all(a <= min(1.0, 12 * q) + 1e-12 for a, q in zip(adj, p))


def test_pair_up_keeps_shared_units_in_order():
    units, x, y = pair_up({(1, 0): 0.5, (0, 1): 0.6, (0, 0): 0.7}, {(0, 0): 0.1, (1, 0): 0.2})
    assert units == [(0, 0), (1, 0)] and x == [0.7, 0.5] and y == [0.1, 0.2]


def test_paired_family_pairs_by_unit_and_holm_corrects_the_family():
    a = {(0, s): v for s, v in enumerate(DRUG2)}
    b = {(0, s): v for s, v in enumerate(DRUG1)}
    noise = {(0, s): v + 0.01 * (-1) ** s for s, v in enumerate(DRUG1)}
    rows = paired_family([("drug", a, b), ("same", noise, b), ("none", a, {})])
    assert [r["label"] for r in rows] == ["drug", "same"]  # no shared unit: left out
    drug = rows[0]
    assert drug["p"] == pytest.approx(0.002833, abs=1e-6) and drug["n"] == 10
    assert drug["p_wilcoxon"] == pytest.approx(paired_test(DRUG2, DRUG1, "wilcoxon").p)
    assert [r["p_holm"] for r in rows] == pytest.approx(holm([r["p"] for r in rows]))
    assert drug["higher"] and not drug["lower"] and not rows[1]["higher"]
    # A shuffled dict order pairs the same units.
    shuffled = dict(reversed(list(b.items())))
    assert paired_family([("drug", a, shuffled)])[0]["p"] == pytest.approx(drug["p"])
