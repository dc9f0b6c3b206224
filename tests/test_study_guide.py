"""The guide study: its 2 x 2 grid and findings on synthetic cases with known answers, the
design's bad input, and one tiny end-to-end run (report checked in Chromium)."""

from __future__ import annotations

import json

import pytest

from test_study_helpers import check_in_chromium, needs_chromium
from transferlab.advise.rules import Thresholds
from transferlab.errors import UserError
from transferlab.studies import get_study
from transferlab.studies.guide.cases import BUDGETS, CASE_SETS, candidates, sweep_specs
from transferlab.studies.guide.config import GuideConfig
from transferlab.studies.guide.study import findings, grid


def _cell(values: dict, val_mean: float | None = None) -> dict:
    m = sum(values.values()) / len(values)
    return {"mean": m, "values": values, "std": None, "ci_low": None, "ci_high": None,
            "n": len(values), "val_mean": m if val_mean is None else val_mean, "time_s": 0.0}


def _record(name, scenario, k, retained, accs: dict, similar=True, val: dict | None = None):
    # three seeds; a per-label wobble (mean 0) so that paired differences have spread
    cells = {lab: _cell({0: a - 0.01, 1: a + 0.01 + 0.002 * i, 2: a - 0.002 * i},
                        None if val is None else val[lab])
             for i, (lab, a) in enumerate(accs.items())}
    return {"name": name, "role": "fit", "scenario": scenario, "k": k, "retained": retained,
            "best_depth": 3, "num_blocks": 7, "nominal_similar": similar, "cells": cells,
            "acc": {lab: c["mean"] for lab, c in cells.items()},
            "val_acc": {lab: c["val_mean"] for lab, c in cells.items()}}


def test_grid_and_findings_known_answers():
    base = {"linear-probe": 0.80, "probe:3": 0.85, "finetune (lr_mult 0.1)": 0.70,
            "finetune (lr_mult 1)": 0.90, "scratch": 0.6}
    recs = [_record("small-dissimilar", "small-dissimilar", 10, 0.5, base, similar=False),
            _record("large-similar", "large-similar", 500, 0.99, base)]
    rows = grid(recs, Thresholds.guide(size_k=100, retained_min=0.9))
    sd, ls = rows
    assert sd["winner"] == "finetune (lr_mult 1)" and sd["winner_acc"] == pytest.approx(0.9)
    assert sd["guide"] == "probe:3" and sd["transferlab"] == "probe:3"
    assert ls["guide"] == "finetune (lr_mult 0.1)" and ls["guide_acc"] == pytest.approx(0.7)
    f = findings(recs, rows)
    # winner - guide: +0.05 (sd) and +0.20 (ls), three seeds with spread
    assert all(r["status"] == "tested" for r in f["winner_vs_guide"])
    diffs = {r["scenario"]: r["mean_diff"] for r in f["winner_vs_guide"]}
    assert diffs == pytest.approx({"small-dissimilar": 0.05, "large-similar": 0.20})
    lr = f["lr_mult_0.1_vs_1"]
    assert [r["mean_diff"] for r in lr] == pytest.approx([-0.2, -0.2])
    assert all(r["lower"] for r in lr)  # the smaller lr is significantly worse here


def test_winner_is_chosen_on_validation_never_on_test():
    base = {"linear-probe": 0.80, "probe:3": 0.85, "finetune (lr_mult 0.1)": 0.70,
            "finetune (lr_mult 1)": 0.90, "scratch": 0.6}
    val = {**{lab: 0.5 for lab in base}, "probe:3": 0.8}  # validation prefers probe:3
    rec = _record("small-dissimilar", "small-dissimilar", 10, 0.5, base, similar=False, val=val)
    th = Thresholds.guide(size_k=100, retained_min=0.9)
    row = grid([rec], th)[0]
    assert row["winner"] == "probe:3" and row["winner_val_acc"] == 0.8
    assert row["winner_acc"] == pytest.approx(0.85)  # its test accuracy, reported
    # Shuffling the test accuracies changes neither the winner nor the advice.
    import random
    for seed in range(3):
        r = json.loads(json.dumps(rec))
        labels = list(r["acc"])
        shuffled = labels[:]
        random.Random(seed).shuffle(shuffled)
        r["acc"] = {a: rec["acc"][b] for a, b in zip(labels, shuffled)}
        r["cells"] = {a: rec["cells"][b] | {"val_mean": rec["cells"][a]["val_mean"]}
                      for a, b in zip(labels, shuffled)}
        got = grid([r], th)[0]
        assert (got["winner"], got["transferlab"], got["guide"]) == \
            (row["winner"], row["transferlab"], row["guide"])


def test_design_candidates_and_epochs():
    assert candidates(7) == ["linear-probe", "probe:1", "probe:2", "probe:3", "probe:4",
                             "probe:5", "probe:6", "freeze:3", "freeze:5", "scratch", "lp-ft"]
    b = BUDGETS["quick"]
    case = CASE_SETS["mnist"][0]
    s1, s2 = sweep_specs(case, b, [0, 1], 7, None, n_train=40)
    # 40 examples in batches of 64: one step per epoch, so 100 epochs = 100 steps
    assert s1["train"]["epochs"] == 100 and s2["axes"]["lr_mult"] == [0.01, 0.1, 0.3, 1.0]
    assert s1["sources"]["source"]["pretrain"]["train"]["epochs"] == b.epochs
    assert case.target_task(b) == "mnist:classes=5-9:per_class=10:size=16"
    assert CASE_SETS["mnist"][1].target_task(b) == "mnist:classes=5-9:per_class=500:size=16"


@pytest.mark.parametrize("kwargs,param", [({"cases": "cifar"}, "--cases"),
                                          ({"budget": "huge"}, "--budget"),
                                          ({"seeds": 0}, "--seeds"),
                                          ({"roles": "some"}, "--roles")])
def test_config_refuses_bad_values(kwargs, param):
    with pytest.raises(UserError, match=param):
        GuideConfig(**kwargs)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The smoke case at the tiny budget, run once: (study, result, out folder)."""
    study = get_study("guide")
    out = tmp_path_factory.mktemp("guide") / "g"
    res = study.run(GuideConfig(cases="smoke", roles="fit", budget="tiny", seeds=1,
                                workers=1, out=str(out)), progress=False)
    return study, res, out


def test_tiny_end_to_end(tiny_run):
    study, res, out = tiny_run
    data = json.loads((out / "guide.json").read_text())
    assert [c["name"] for c in data["cases"]] == ["small-similar"]
    for c in data["cases"]:
        assert c["failed"] == 0 and "finetune (lr_mult 0.1)" in c["acc"]
        assert set(c["evidence"]) >= {"per_depth", "retained", "examples_per_class"}
    assert len(res["grid"]) == 1 and data["thresholds"]["size_k"] >= 2
    for row in res["grid"]:  # the winner is the best validation mean, whatever the rules say
        case = next(c for c in data["cases"] if c["name"] == row["case"])
        assert row["winner_val_acc"] == max(case["val_acc"].values())
        assert row["winner_acc"] == case["acc"][row["winner"]]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "2 x 2 grid" in html and "Calibration" in html


@needs_chromium
def test_tiny_report_renders_in_headless_chromium(tiny_run):
    text = check_in_chromium((tiny_run[2] / "report.html").resolve(), n_images=2)
    assert "2 x 2 grid" in text and "Calibration" in text
