"""The defrost study: n* and the four findings on result tables with known answers, bad
input, and one tiny end-to-end run (resume, defrost.json, report in Chromium)."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pytest

from test_study_helpers import check_in_chromium, needs_chromium
from transferlab.cli import main
from transferlab.studies.defrost.config import DefrostConfig
from transferlab.studies.defrost.curves import compute_curves
from transferlab.studies.defrost.design import SOURCE_SEED, design, sweep_specs
from transferlab.studies.defrost.findings import findings, headline
from transferlab.studies.defrost.reps import fall_depth

# per-seed offsets shared by every depth (a good seed is good)
OFFSETS = [-0.01, 0.0, 0.01, 0.005, -0.005]
# Paper-like optima with a per-seed wobble of one depth, so that per-seed n* differences have
# spread: identical differences would be "not tested" (zero variance), never p = 0.
PEAK = {(20, 0.0): 3, (20, 1.0): 5, (60, 0.0): 1, (60, 1.0): 3}
JITTER = {(20, 0.0): [0, 1, 0, 0, -1], (20, 1.0): [0, 0, 0, -1, 0],
          (60, 0.0): [0, 0, 1, 0, 0], (60, 1.0): [1, 0, 0, 0, 0]}


@pytest.fixture(scope="module")
def tiny():
    return design(DefrostConfig(synthetic=True, budget="tiny", seeds=3))


@pytest.fixture(scope="module")
def five():
    return design(DefrostConfig(synthetic=True, budget="tiny", seeds=5))


def _table(d, peak, height=0.05, noise=0.0, test_peak=None):
    """Rows as the sweep returns them: freeze:n validation accuracy = 0.79 + a tent of
    ``height`` centred at ``peak(N, level, seed)`` (plus a seed-dependent wobble of size
    ``noise``), test accuracy 0.01 above it, or a tent centred at ``test_peak`` when given
    (validation and test disagree); scratch 0.7."""
    rows = []
    for (seed, n, lv), task in d.targets.items():
        for dep in d.depths:
            wob = noise * np.sin(7 * seed + 3 * dep + n) + OFFSETS[seed]
            val = 0.79 + height * max(0.0, 1 - abs(dep - peak(n, lv, seed)) / 2) + wob
            acc = val + 0.01 if test_peak is None else (
                0.8 + height * max(0.0, 1 - abs(dep - test_peak(n, lv, seed)) / 2) + wob)
            rows.append({"task": task, "protocol": f"freeze:{dep}", "depth": dep,
                         "seed": seed, "test_acc": acc, "val_acc": val,
                         "status": "done"})
        rows.append({"task": task, "protocol": "scratch", "depth": None, "seed": seed,
                     "test_acc": 0.7 + OFFSETS[seed], "val_acc": 0.7, "status": "done"})
    return pd.DataFrame(rows)


def test_design_pairs_everything_by_seed(tiny):
    assert tiny.depths == [0, 1, 2, 3, 4, 5] and tiny.num_blocks == 5
    # N training examples (N / 2 per class) and 20 validation examples per class drawn
    # besides them, from a pool of 1.5x the draw + 50; knob "both" sets eta = q
    assert tiny.targets[(2, 60, 1.0)] == ("synthetic:per_class=30:val_per_class=20:role=target:"
                                          "dim=20:latent=6:n=200:n_test=300:gen_seed=2")
    assert tiny.targets[(1, 20, 0.0)] == ("synthetic:per_class=10:val_per_class=20:role=target:"
                                          "dim=20:latent=6:eta=0.0:q=0.0:n=140:n_test=300:"
                                          "gen_seed=1")
    specs = sweep_specs(tiny)
    assert len(specs) == 3 * 2 * 2  # seeds x sizes x (freeze, scratch)
    src = specs[0]["sources"]["source"]["pretrain"]
    assert src["seed"] == SOURCE_SEED and "gen_seed" not in src["task"]  # seed 0's world
    assert specs[0]["axes"]["depth"] == tiny.depths
    assert [s.get("keep") for s in specs[:4]] == [None, None, None, ["weights"]]


def test_nstar_and_findings_reproduce_on_paper_like_numbers(five):
    # deeper optimum at small N and at high correlation, interior at large N / low corr
    table = _table(five, lambda n, lv, s: PEAK[(n, lv)] + JITTER[(n, lv)][s], noise=0.002)
    curves = compute_curves(table, five)
    got = {(o["target_size"], o["correlation"]): o["depth"] for o in curves["optimal"]}
    assert got == PEAK
    best = next(o for o in curves["optimal"] if o["target_size"] == 60 and o["correlation"] == 0)
    at1 = next(c for c in curves["cells"] if c["target_size"] == 60 and c["depth"] == 1
               and c["correlation"] == 0.0)
    assert best["mean"] == at1["mean"] and best["val_mean"] == pytest.approx(at1["mean"] - 0.01)
    seed_n = {r["seed"]: r["depth"] for r in curves["seed_optimal"]
              if r["target_size"] == 20 and r["correlation"] == 0.0}
    assert seed_n == {s: 3 + JITTER[(20, 0.0)][s] for s in range(5)}
    rule, found, gains = findings(curves, five.num_blocks)
    assert [f.reproduced for f in found] == [True, True, True, True]
    g = next(g for g in gains if g["target_size"] == 60 and g["correlation"] == 0.0)
    assert g["vs_full_freeze"]["mean_diff"] == pytest.approx(0.045, abs=0.005)
    assert g["vs_scratch"]["mean_diff"] == pytest.approx(0.145, abs=0.005)
    assert "n* chosen on validation" in found[0].text


def test_nstar_is_chosen_on_validation_never_on_test(five):
    # Validation peaks at depth 1, test at depth 4: n* follows validation, and its reported
    # mean is the test accuracy at depth 1.
    table = _table(five, lambda n, lv, s: 1)
    freeze = table["protocol"].str.startswith("freeze")
    table.loc[freeze, "test_acc"] = 0.8 + 0.05 * (table.loc[freeze, "depth"] == 4)
    curves = compute_curves(table, five)
    assert {o["depth"] for o in curves["optimal"]} == {1}
    assert all(o["mean"] == pytest.approx(0.8) for o in curves["optimal"])
    assert {r["depth"] for r in curves["seed_optimal"]} == {1}
    # Shuffling the test accuracies (labels of the test split) changes no choice.
    base = compute_curves(_table(five, lambda n, lv, s: PEAK[(n, lv)] + JITTER[(n, lv)][s],
                                 noise=0.002), five)
    for seed in range(3):
        t = _table(five, lambda n, lv, s: PEAK[(n, lv)] + JITTER[(n, lv)][s], noise=0.002)
        t["test_acc"] = np.random.default_rng(seed).permutation(t["test_acc"].to_numpy())
        shuffled = compute_curves(t, five)
        assert [(o["target_size"], o["correlation"], o["depth"]) for o in shuffled["optimal"]] \
            == [(o["target_size"], o["correlation"], o["depth"]) for o in base["optimal"]]
        assert shuffled["seed_optimal"] == base["seed_optimal"]
    # No validation accuracy: no n* (test accuracy is never the fallback).
    table["val_acc"] = None
    assert compute_curves(table, five)["optimal"] == []


def test_headline_says_whether_nstar_moves(five):
    peak = {(20, 0.0): 1, (20, 1.0): 5, (60, 0.0): 0, (60, 1.0): 3}
    curves = compute_curves(_table(five, lambda n, lv, s: peak[(n, lv)] + JITTER[(n, lv)][s]), five)
    _, found, _ = findings(curves, five.num_blocks)
    line = headline(curves, found)
    assert line.startswith("Reproduced: the optimal freeze depth n* changes")
    assert "corr=1.0: N=20 -> 5, N=60 -> 3; corr=0.0: N=20 -> 1, N=60 -> 0" in line
    curves = compute_curves(_table(five, lambda n, lv, s: 0), five)
    _, found, _ = findings(curves, five.num_blocks)
    line = headline(curves, found)
    assert line.startswith("NOT reproduced") and "the same in every cell" in line


def test_findings_say_plainly_what_does_not_reproduce(tiny, five):
    # full freezing always best and n* never moves: (1) fails; (2)-(4) compare per-seed n*
    # differences that are all 0: zero variance, "not tested" (never p = 0 or p = 1)
    curves = compute_curves(_table(tiny, lambda n, lv, s: 5), tiny)
    _, found, _ = findings(curves, tiny.num_blocks)
    assert [f.reproduced for f in found] == [False, None, None, None]
    assert "Not tested" in found[2].text
    # the reverse trend (shallower at small N) is said to be reversed
    curves = compute_curves(_table(five, lambda n, lv, s: (1 if n == 20 else 4)
                                   + JITTER[(n, lv)][s]), five)
    _, found, _ = findings(curves, five.num_blocks)
    assert found[2].reproduced is False and "significantly reversed in 2" in found[2].text
    # the means point the claimed way (n* 3 vs 0) but one seed of three disagrees: the
    # per-seed differences (3, 3, 0) are not significant, so it is not called reproduced
    curves = compute_curves(_table(tiny, lambda n, lv, s: 3 if n == 20 and s < 2 else 0), tiny)
    _, found, _ = findings(curves, tiny.num_blocks)
    assert found[2].reproduced is False
    assert "the means point the claimed way, but no per-seed difference" in found[2].text
    # one seed, or two: nothing is tested
    for seeds in (1, 2):
        d = design(DefrostConfig(synthetic=True, budget="tiny", seeds=seeds))
        curves = compute_curves(_table(d, lambda n, lv, s: (2 if n == 20 else 1) + s), d)
        _, found, _ = findings(curves, d.num_blocks)
        assert [f.reproduced for f in found] == [None, None, None, None]


def test_fall_depth():
    assert fall_depth([0.95, 0.9, 0.4, 0.35]) == 2  # largest drop after block 2
    assert fall_depth([0.3, 0.3, 0.2]) == 0  # falls at the first block already
    assert fall_depth([1.0, 1.0]) == 2  # never falls: L
    assert fall_depth([0.9, None]) is None


@pytest.mark.parametrize("args, message", [
    (["--synthetic", "--correlations", "0,1.5"],
     "--correlations=1.5 is invalid: allowed is levels in [0, 1]"),
    (["--synthetic", "--depths", "0,9"], "--depths=9 is invalid: allowed is depths in 0..5 "
                                          "(the mlp has L = 5 blocks: fc1, fc2, fc3, fc4, fc5)"),
    (["--synthetic", "--generator", "colour=red"], "fix 'colour=red'"),
    (["--synthetic", "--sizes", "0,50"], "--sizes=[0, 50] is invalid: allowed is target sizes"),
    (["--synthetic", "--generator", "eta=0.3"], "--generator='eta=0.3' is invalid"),
    ([], "--synthetic=False is invalid: allowed is --synthetic, or --source-task"),
    (["--source-task", "digits:classes=0-4", "--target-task", "digits:classes=5-9:per_class=5"],
     "allowed is a task without per_class (the study sets the target size from --sizes"),
    (["--source-task", "digits:classes=0-4"], "--target-task=None is invalid: allowed is both"),
    (["--synthetic", "--source-task", "mnist"], "--source-task='mnist' is invalid: allowed is "
                                                "not with --synthetic"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, capsys):
    assert main(["study", "defrost", "--budget", "tiny", "--out", str(tmp_path / "o"),
                 *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "o").exists()  # nothing partial left behind


@pytest.fixture
def one_thread():
    """Tiny MLPs: one torch thread is fastest (two threads on a busy 2-core CPU are many
    times slower); workers=1 runs the trials in this process with its threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny synthetic study, run once for the tests below (one torch thread: see
    ``one_thread``); (study, cfg, result, out folder)."""
    import torch

    from transferlab.studies import get_study

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("defrost")
        study = get_study("defrost")
        cfg = study.config(synthetic=True, budget="tiny", seeds=2, depths=[0, 2, 5],
                           out=str(out), workers=1)
        yield study, cfg, study.run(cfg, progress=False), out
    finally:
        torch.set_num_threads(before)


def test_tiny_study_end_to_end_and_resume(tiny_run, one_thread):
    study, cfg, res, tmp_path = tiny_run
    data = json.loads((tmp_path / "defrost.json").read_text())
    assert len(data["cells"]) == 2 * 2 * 3 and len(data["optimal"]) == 4
    assert set(data["cells"][0]) >= {"target_size", "correlation", "depth", "mean", "std", "n"}
    assert set(data["optimal"][0]) >= {"target_size", "correlation", "depth", "mean"}
    assert data["provenance"]["versions"] and len(data["findings"]) == 4
    reps = data["representations"]
    assert [r["correlation"] for r in reps] == [0.0, 1.0] and reps[0]["seeds"] == [0, 1]
    assert len(reps[0]["metrics"]["knn_overlap"]["mean"]) == 5
    for name in ("heatmap.png", "curves.png", "similarity.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 0
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "Findings" in html and "Representations" in html
    n_rows = sqlite3.connect(tmp_path / "defrost.sqlite").execute(
        "select count(*) from trials").fetchone()[0]
    assert n_rows == res["settings"]["trials"] == 2 * 2 * 2 * (3 + 1)
    again = study.run(cfg, progress=False)  # resumes: nothing new is trained
    assert sqlite3.connect(tmp_path / "defrost.sqlite").execute(
        "select count(*) from trials").fetchone()[0] == n_rows
    assert again["optimal"] == res["optimal"]


@needs_chromium
def test_tiny_study_report_renders_in_headless_chromium(tiny_run):
    text = check_in_chromium(tiny_run[3] / "report.html", 3)
    assert "Findings" in text and "Representations" in text
