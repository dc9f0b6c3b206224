"""Yosinski study: curves from a results table, and findings decided by paired tests."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from test_study_helpers import BLOCKS, DEPTHS, paper_like, table
from transferlab.errors import UserError
from transferlab.studies.yosinski.curves import (CONDITIONS, compute_curves, label_conditions,
                                                 unit_values)
from transferlab.studies.yosinski.findings import ALPHA, findings, fmt_depths


def _curves(means: dict, n_seeds: int = 4, spread: float = 0.01, jitter: float = 0.003,
            split_seeds=(0, 1), **settings) -> dict:
    df = table(means, n_seeds, spread, jitter, list(split_seeds) if split_seeds else None)
    c = compute_curves(label_conditions(df))
    c["block_names"] = BLOCKS
    c["settings"] = settings
    return c


def _by_key(curves: dict, compare: dict | None = None) -> dict:
    return {f.key: f for f in findings(curves, compare)[1]}


# --- curves ----------------------------------------------------------------------------
def test_label_conditions_maps_source_and_protocol_family():
    df = pd.DataFrame({"source": ["baseA", "baseA", "baseB", "baseB", "random", "baseB",
                                  "other"],
                       "protocol": ["reinit:3", "reinit+:3", "reinit:1", "reinit+:6", "reinit:2",
                                    "scratch", "reinit:2"]})
    got = label_conditions(df)["condition"].tolist()
    assert got == ["AnB", "AnB+", "BnB", "BnB+", "random", "baseB", None]


def test_label_conditions_needs_columns():
    with pytest.raises(UserError, match=r"lacks columns \['protocol'\]"):
        label_conditions(pd.DataFrame({"source": ["baseA"]}))


def test_curves_known_means_stds_intervals_and_units():
    means = paper_like()
    c = _curves(means, n_seeds=4, spread=0.02, jitter=0.0)
    assert c["depths"] == DEPTHS and set(c["conditions"]) == set(CONDITIONS)
    half = st.t.ppf(0.975, 3) * 0.02 / 2  # t-interval of 4 values with std 0.02
    for name in CONDITIONS:
        cond = c["conditions"][name]
        assert cond["depth"] == DEPTHS
        for i, d in enumerate(DEPTHS):
            assert cond["mean"][i] == pytest.approx(means[name][d], abs=1e-12)
            assert cond["std"][i] == pytest.approx(0.02, abs=1e-12)
            assert cond["ci_low"][i] == pytest.approx(means[name][d] - half, abs=1e-12)
            assert cond["ci_high"][i] == pytest.approx(means[name][d] + half, abs=1e-12)
            assert cond["n"][i] == 4 and cond["n_failed"][i] == 0
            # Units sorted by (split seed, seed).
            assert list(zip(cond["split_seeds"][i], cond["seeds"][i])) == \
                [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert c["baseB"]["mean"] == pytest.approx(0.90) and c["baseB"]["std"] == pytest.approx(0.02)
    assert set(unit_values(c, "baseB")) == set(unit_values(c, "AnB", 3)) == \
        {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert unit_values(c, "AnB", 99) == {}


def test_curves_drop_failed_and_nonfinite_trials_and_count_them():
    df = table(paper_like(), n_seeds=3)
    bad = (df["source"] == "baseA") & (df["protocol"] == "reinit:2")
    df.loc[bad & (df["seed"] == 0), "status"] = "failed"
    df.loc[bad & (df["seed"] == 1), "test_acc"] = float("nan")
    c = compute_curves(label_conditions(df))
    i = DEPTHS.index(2)
    anb = c["conditions"]["AnB"]
    assert anb["n"][i] == 1 and anb["n_failed"][i] == 2 and anb["seeds"][i] == [2]
    assert anb["mean"][i] == pytest.approx(paper_like()["AnB"][2] + 0.01)
    assert anb["std"][i] is None and anb["ci_low"][i] is None  # one value: no spread


# --- findings ----------------------------------------------------------------------------
def test_paper_like_curves_reproduce_every_effect():
    f = _by_key(_curves(paper_like()))
    assert f["specificity"].reproduced is True
    assert f["specificity"].depths == [4, 5, 6]
    assert "AnB falls below BnB at n = 4–6" in f["specificity"].text
    assert "From n = 4 (conv1–conv4 copied) upward" in f["specificity"].text
    assert "largest gap +9.0 pp [95% CI" in f["specificity"].text
    assert f["coadaptation"].reproduced is True and f["coadaptation"].depths == [3, 4]
    assert "recovers to baseB's level at n = 6" in f["coadaptation"].text
    assert f["finetune_boost"].reproduced is True
    assert "6 of 6 depths" in f["finetune_boost"].text
    assert f["random_features"].reproduced is True and f["random_features"].depths == DEPTHS
    assert f["dissimilar"].reproduced is None


def test_absent_effects_flip_every_sentence():
    f = _by_key(_curves(paper_like(drop=False, dip=False, boost=False, random_worse=False)))
    assert f["specificity"].reproduced is False
    assert f["specificity"].text.startswith("AnB never falls significantly below BnB")
    assert "does not reproduce" in f["specificity"].text
    assert f["coadaptation"].reproduced is False
    assert "no co-adaptation dip" in f["coadaptation"].text
    assert f["finetune_boost"].reproduced is False
    assert "not significantly different from baseB at any n" in f["finetune_boost"].text
    assert f["random_features"].reproduced is False
    assert "does not reproduce" in f["random_features"].text


def test_tests_agree_with_scipy_and_a_hand_holm():
    c = _curves(paper_like(), jitter=0.01)
    f = _by_key(c)["specificity"]
    raw = []
    for d in DEPTHS:
        bnb, anb = unit_values(c, "BnB", d), unit_values(c, "AnB", d)
        units = sorted(bnb)
        res = st.ttest_rel([bnb[u] for u in units], [anb[u] for u in units])
        raw.append(res.pvalue)
    order = np.argsort(raw)
    holm = np.empty(6)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (6 - rank) * raw[i]))
        holm[i] = running
    assert [r["p"] for r in f.tests] == pytest.approx(raw)
    assert [r["p_holm"] for r in f.tests] == pytest.approx(list(holm))
    assert [r["depth"] for r in f.tests if r["higher"]] == \
        [d for d, p in zip(DEPTHS, holm) if p < ALPHA]
    assert all(r["n"] == 4 for r in f.tests)


def test_the_same_gap_counts_only_when_the_paired_noise_is_small():
    base = paper_like(drop=False, dip=False)
    means = dict(base, AnB={d: base["BnB"][d] - (0.02 if d == 6 else 0.0) for d in DEPTHS})
    quiet = _by_key(_curves(means, jitter=0.002))["specificity"]
    noisy = _by_key(_curves(means, jitter=0.02))["specificity"]
    assert quiet.reproduced is True and quiet.depths == [6]
    assert noisy.reproduced is False and "does not reproduce" in noisy.text
    # A large shared unit effect (spread) cancels in the paired difference.
    shared = _by_key(_curves(means, spread=0.2, jitter=0.002))["specificity"]
    assert shared.reproduced is True


def test_holm_correction_can_overrule_a_raw_p_below_alpha():
    base = paper_like(drop=False, dip=False)
    means = dict(base, AnB={d: base["BnB"][d] - (0.03 if d == 6 else 0.0) for d in DEPTHS})
    f = _by_key(_curves(means, jitter=0.01))["specificity"]
    row = f.tests[-1]
    # Six depths: the smallest p is multiplied by 6 (raw 0.044 -> 0.26).
    assert row["p"] < ALPHA <= row["p_holm"] and row["p_holm"] == pytest.approx(6 * row["p"])
    assert not row["higher"] and f.reproduced is False


def test_a_drop_that_does_not_reach_the_top_is_not_the_papers_pattern():
    base = paper_like(drop=False)
    means = dict(base, AnB={d: base["BnB"][d] - (0.05 if d == 2 else 0.0) for d in DEPTHS})
    f = _by_key(_curves(means))["specificity"]
    assert f.reproduced is False and f.depths == [2]
    assert "does not persist up to the top depth n = 6" in f.text


def test_finetune_below_baseline_is_reported_as_not_reproducing():
    base = paper_like()
    f = _by_key(_curves(dict(base, **{"AnB+": {d: 0.85 for d in DEPTHS}})))["finetune_boost"]
    assert f.reproduced is False and f.depths == DEPTHS
    assert f.text.startswith("AnB+ falls below baseB at n = 1–6 (mean difference over n -5.0 pp")


def test_single_unit_decides_nothing_and_says_so():
    rule, fs = findings(_curves(paper_like(), n_seeds=1, split_seeds=None))
    assert "no paired test is possible" in rule
    for f in fs[:4]:
        assert f.reproduced is None, f.text
        assert f.text.startswith("Not tested: a paired test needs 3 units"), f.text
    spec = {f.key: f for f in fs}["specificity"]
    assert "+9.0 pp at n = 6" in spec.text  # the single difference is still shown


def test_dissimilar_split_comparison_both_ways():
    rnd = _curves(paper_like(), split="random")
    bigger = paper_like()
    bigger["AnB"] = {d: v - 0.05 for d, v in bigger["AnB"].items()}
    dis = _curves(bigger, split="dissimilar", split_seeds=None)
    f = _by_key(dis, compare=rnd)["dissimilar"]
    assert f.reproduced is True and f.depths == DEPTHS
    # Mean relative drops at n = 6, computed by hand from the units.
    drops = {}
    for name, c in (("dis", dis), ("rnd", rnd)):
        base, anb = unit_values(c, "baseB"), unit_values(c, "AnB", 6)
        drops[name] = np.mean([1 - anb[u] / base[u] for u in anb])
    assert (f"loses {100 * drops['dis']:.1f}% at n = 6 on the dissimilar split versus "
            f"{100 * drops['rnd']:.1f}% on the random") in f.text
    assert "Welch t-test" in f.text
    # Either side may be the current study; the same numbers give the same answer.
    assert _by_key(rnd, compare=dis)["dissimilar"].reproduced is True
    same = _by_key(_curves(paper_like(), split="dissimilar", split_seeds=None),
                   compare=rnd)["dissimilar"]
    assert same.reproduced is False and "does not reproduce" in same.text


def test_missing_condition_is_not_measured():
    means = paper_like()
    del means["random"]
    f = _by_key(_curves(means))["random_features"]
    assert f.reproduced is None and f.text == "Not measured: random or AnB has no finished trials."


def test_fmt_depths_compresses_runs():
    assert fmt_depths([1, 2, 3, 5]) == "1–3, 5"
    assert fmt_depths([2, 4, 5]) == "2, 4, 5"
    assert fmt_depths([6]) == "6"


def test_rule_states_the_test_and_the_units():
    rule, _ = findings(_curves(paper_like()))
    assert "paired t-test" in rule and "up to 4 (split seed, seed) pairs" in rule
    assert "Holm" in rule and f"p < {ALPHA:g}" in rule
    assert math.isclose(ALPHA, 0.05)
