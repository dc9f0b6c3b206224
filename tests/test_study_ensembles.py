"""The ensembles study: findings from synthetic replicates with known answers, the
aggregate table, and one tiny end-to-end run (JSON, report in headless Chromium)."""

from __future__ import annotations

import json

import pytest
from test_study_helpers import check_in_chromium, needs_chromium

from transferlab.errors import UserError
from transferlab.studies import get_study
from transferlab.studies.ensembles.config import EnsemblesConfig
from transferlab.studies.ensembles.findings import findings
from transferlab.studies.ensembles.study import aggregate

SHIFT, BASE = "shift:tiny_epochs=1", "independent"


def _units(acc_diff, dis_diff, nll_diff=0.0, n=3, jitter=(0.002, -0.001, 0.003)):
    units = {}
    for s in range(n):
        base = {"accuracy": 0.9 + 0.01 * s, "nll": 0.4, "ece": 0.02, "disagreement": 0.1,
                "wall_time_s": 10.0, "epochs": 50}
        shift = {**base, "accuracy": base["accuracy"] + acc_diff + jitter[s],
                 "nll": base["nll"] + nll_diff + jitter[s], "disagreement": 0.1 + dis_diff
                 + jitter[s], "wall_time_s": 3.0}
        units[s] = {BASE: base, SHIFT: shift}
    return units


def _adds(add, full, n=3):
    return {s: {"add_time_s": add + 0.1 * s, "full_time_s": full + 0.05 * s,
                "time_ratio": (add + 0.1 * s) / (full + 0.05 * s)} for s in range(n)}


def test_findings_follow_the_numbers():
    _, found = findings(_units(0.0, 0.2), _adds(1.0, 10.0), SHIFT, BASE)
    got = {f.key: f.reproduced for f in found}
    assert got == {"accuracy": True, "uncertainty": True, "disagreement": True,
                   "addition": True}
    _, found = findings(_units(-0.05, -0.05, nll_diff=0.2), _adds(10.0, 1.0), SHIFT, BASE)
    assert {f.key: f.reproduced for f in found} == {
        "accuracy": False, "uncertainty": False, "disagreement": False, "addition": False}
    acc = next(f for f in found if f.key == "accuracy")
    assert acc.test["mean_diff"] == pytest.approx(-0.05 + 0.004 / 3)
    assert "does not hold" in acc.text and "-0.0487" in acc.text


def test_one_replicate_is_not_tested():
    _, found = findings(_units(0.0, 0.2, n=1), _adds(1.0, 10.0, n=1), SHIFT, BASE)
    assert all(f.reproduced is None for f in found)
    assert all("not tested (1 replicate(s)" in f.text for f in found)


def test_aggregate_means_and_stds():
    rows = aggregate(_units(0.0, 0.2), {BASE: "full", SHIFT: "matched", "missing": "x"})
    assert [r["strategy"] for r in rows] == [BASE, SHIFT]
    assert rows[0]["accuracy"] == pytest.approx(0.91) and rows[0]["accuracy_std"] == \
        pytest.approx(0.01)
    assert rows[1]["wall_time_s"] == 3.0 and rows[1]["n"] == 3


@pytest.mark.parametrize("kw, match", [({"pair": "svhn"}, "--pair='svhn'"),
                                       ({"members": 1}, "--members=1"),
                                       ({"seeds": 0}, "--seeds=0")])
def test_config_checks(kw, match):
    with pytest.raises(UserError, match=match):
        EnsemblesConfig(**kw)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny digits study, run once: (study, result, out folder)."""
    out = tmp_path_factory.mktemp("ensembles") / "ens"
    study = get_study("ensembles")
    cfg = study.config(pair="digits", members=2, seeds=1, budget="tiny", workers=1,
                       out=str(out))
    return study, study.run(cfg, progress=False), out


def test_tiny_end_to_end_run_writes_json_and_a_report(tiny_run):
    study, res, out = tiny_run
    doc = json.loads((out / "ensembles.json").read_text())
    assert doc["study"] == "ensembles" and len(doc["findings"]) == 4
    names = [r["strategy"] for r in doc["strategies"]]
    assert names == ["independent", "shift:tiny_epochs=1", "shift-only", "tiny:epochs=1",
                     "head-only"]
    for r in doc["strategies"]:
        assert {"strategy", "accuracy", "nll", "ece", "brier", "disagreement",
                "member_accuracy", "wall_time_s"} <= set(r)
    assert doc["additions"]["0"]["full_time_s"] > 0
    assert doc["provenance"] and res["settings"]["members"] == 2
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "Competitive accuracy" in html and "shift-only" in html
    lines, _ = study.summarize(res)
    assert lines[0].startswith("ensembles study digits")


@needs_chromium
def test_tiny_report_renders_in_headless_chromium(tiny_run):
    text = check_in_chromium(tiny_run[2] / "report.html", n_images=2)
    assert "Competitive accuracy" in text and "shift-only" in text
