"""Yosinski study: curves from a results table, and findings generated from the numbers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from test_study_helpers import BLOCKS, DEPTHS, paper_like, table
from transferlab.errors import UserError
from transferlab.studies.curves import (CONDITIONS, compute_curves, label_conditions,
                                        pooled_std)
from transferlab.studies.findings import FLOOR, K, SINGLE_SEED, Noise, findings, fmt_depths


def _curves(means: dict, n_seeds: int = 3, spread: float = 0.01, **settings) -> dict:
    c = compute_curves(label_conditions(table(means, n_seeds, spread)))
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


def test_curves_known_means_stds_and_seed_values():
    means = paper_like()
    c = _curves(means, n_seeds=3, spread=0.02)
    assert c["depths"] == DEPTHS
    assert set(c["conditions"]) == set(CONDITIONS)
    for name in CONDITIONS:
        cond = c["conditions"][name]
        assert cond["depth"] == DEPTHS
        for i, d in enumerate(DEPTHS):
            assert cond["mean"][i] == pytest.approx(means[name][d], abs=1e-12)
            assert cond["std"][i] == pytest.approx(0.02, abs=1e-12)
            assert cond["n"][i] == 3 and cond["n_failed"][i] == 0
            assert cond["seeds"][i] == [0, 1, 2]
            assert cond["values"][i] == pytest.approx([means[name][d] - 0.02, means[name][d],
                                                       means[name][d] + 0.02])
    assert c["baseB"]["mean"] == pytest.approx(0.90)
    assert c["baseB"]["std"] == pytest.approx(0.02)
    assert pooled_std(c) == pytest.approx(0.02)


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
    assert anb["std"][i] is None  # one seed left: no sample std


def test_pooled_std_weights_cells_by_degrees_of_freedom():
    df = pd.concat([table({"BnB": {1: 0.5}}, 3, 0.01), table({"AnB": {1: 0.5}}, 2, 0.04)])
    c = compute_curves(label_conditions(df))
    # (2 * 0.01^2 + 1 * 0.04^2) / 3
    assert pooled_std(c) == pytest.approx(math.sqrt((2e-4 + 16e-4) / 3))


# --- findings ----------------------------------------------------------------------------
def test_threshold_rule_is_k_sigma_root_two_over_n_with_floor():
    assert Noise(0.01).threshold(3, 3) == pytest.approx(K * 0.01 * math.sqrt(2 / 3))
    assert Noise(0.0).threshold(3, 3) == FLOOR
    assert Noise(None).threshold(1, 1) == SINGLE_SEED


def test_paper_like_curves_reproduce_every_effect():
    f = _by_key(_curves(paper_like()))
    assert f["specificity"].reproduced is True
    assert f["specificity"].depths == [4, 5, 6]
    assert "AnB falls below BnB at n = 4–6" in f["specificity"].text
    assert "From n = 4 (conv1–conv4 copied) upward" in f["specificity"].text
    assert "largest gap 9.0 pp at n = 6" in f["specificity"].text
    assert f["coadaptation"].reproduced is True and f["coadaptation"].depths == [3, 4]
    assert "recovers to baseB's level at n = 6" in f["coadaptation"].text
    assert f["finetune_boost"].reproduced is True
    assert "6 of 6 depths" in f["finetune_boost"].text
    assert f["random_features"].reproduced is True and f["random_features"].depths == DEPTHS
    assert f["dissimilar"].reproduced is None


def test_absent_effects_flip_every_sentence():
    f = _by_key(_curves(paper_like(drop=False, dip=False, boost=False, random_worse=False)))
    assert f["specificity"].reproduced is False
    assert f["specificity"].text.startswith("AnB never falls measurably below BnB")
    assert "does not reproduce" in f["specificity"].text
    assert f["coadaptation"].reproduced is False
    assert "no co-adaptation dip" in f["coadaptation"].text
    assert f["finetune_boost"].reproduced is False
    assert "within noise of baseB at every n" in f["finetune_boost"].text
    assert f["random_features"].reproduced is False
    assert "does not reproduce" in f["random_features"].text


def test_gap_counts_only_beyond_the_threshold():
    thr = K * 0.01 * math.sqrt(2 / 3)  # 3 seeds, std 0.01 in every cell
    base = paper_like(drop=False, dip=False)
    for gap, counted in ((thr - 0.002, False), (thr + 0.002, True)):
        means = dict(base, AnB={d: base["BnB"][d] - (gap if d == 6 else 0.0) for d in DEPTHS})
        f = _by_key(_curves(means))["specificity"]
        assert f.reproduced is counted, (gap, f.text)


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


def test_single_seed_uses_the_fixed_threshold_and_says_so():
    rule, fs = findings(_curves(paper_like(), n_seeds=1))
    assert "One seed per point" in rule and f"{100 * SINGLE_SEED:.1f} pp" in rule
    assert {f.key: f.reproduced for f in fs}["specificity"] is True


def test_dissimilar_split_comparison_both_ways():
    rnd = _curves(paper_like(), split="random")
    bigger = paper_like()
    bigger["AnB"] = {d: v - 0.05 for d, v in bigger["AnB"].items()}
    dis = _curves(bigger, split="dissimilar")
    f = _by_key(dis, compare=rnd)["dissimilar"]
    assert f.reproduced is True and f.depths == DEPTHS
    # AnB at n = 6 is 0.90 - 0.09 (- 0.05): relative drops 10.0% and 15.6%.
    assert "loses 15.6% at n = 6 on the dissimilar split versus 10.0% on the random" in f.text
    # Either side may be the current study; the same numbers give the same answer.
    assert _by_key(rnd, compare=dis)["dissimilar"].reproduced is True
    same = _by_key(_curves(paper_like(), split="dissimilar"), compare=rnd)["dissimilar"]
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


def test_each_comparison_pools_only_its_own_curves():
    means = paper_like(drop=False)
    means["AnB"] = {d: means["BnB"][d] - (0.02 if d == 6 else 0.0) for d in DEPTHS}
    rnd = {"random": means.pop("random")}
    df = pd.concat([table(means, 3, 0.01), table(rnd, 3, 0.10)])
    c = compute_curves(label_conditions(df))
    assert pooled_std(c, ["BnB", "AnB"]) == pytest.approx(0.01)
    assert pooled_std(c, ["AnB", "random"]) == pytest.approx(math.sqrt((1e-4 + 1e-2) / 2))
    f = _by_key(c)
    # 2 pp > 2 * 1 pp * sqrt(2/3): counts, although random's 10 pp seed std would hide it.
    assert f["specificity"].reproduced is True and "σ = 1.0 pp" in f["specificity"].text
    assert "σ = 7.1 pp" in f["random_features"].text
