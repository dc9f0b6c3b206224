"""``transferlab advise`` on a tiny digits source: evidence invariants and known answers,
bad input (one line, exit 2), and the verified race end to end with its report."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from test_study_helpers import check_in_chromium, needs_chromium
from transferlab.advise import Thresholds, advise
from transferlab.advise.evidence import _path_accs, measure
from transferlab.api import pretrain
from transferlab.checkpoint import save_checkpoint
from transferlab.cli import main
from transferlab.data import make_task
from transferlab.errors import UserError

SRC = "digits:classes=0-4:size=8"
TGT = "digits:classes=5-9:per_class=12:size=8"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny convnet pretrained on digits 0-4 (8x8), saved as a checkpoint."""
    res = pretrain(make_task(SRC), arch="convnet", train={"epochs": 2, "lr": 0.05},
                   width=4, fc_width=16, progress=False)
    path = tmp_path_factory.mktemp("src") / "src"
    save_checkpoint(path, res.model, {"task": SRC, "protocol": "pretrain"})
    return res.model, str(path) + ".safetensors"


def test_evidence_invariants_and_test_split_never_read(source):
    model, _ = source
    task = make_task(TGT)
    ev = measure(model, task, per_class=40)
    assert [e.depth for e in ev.per_depth] == list(range(1, model.num_blocks + 1))
    assert ev.examples_per_class == 12 and ev.num_classes == 5
    assert ev.best_acc >= ev.top_acc and 0.0 <= ev.retained <= 1.0
    assert ev.best_acc == max(e.probe_val_acc for e in ev.per_depth)
    assert ev.cross_validated  # 3 validation examples per class: CV over the 12
    assert ev.leep is not None and ev.leep <= 0  # LEEP is a mean log-likelihood
    poisoned = dataclasses.replace(task, x_test=torch.full_like(task.x_test, float("nan")))
    again = measure(model, poisoned, per_class=40)
    assert [e.probe_val_acc for e in again.per_depth] == \
        [e.probe_val_acc for e in ev.per_depth]


def test_a_destroyed_top_block_reads_as_dissimilar(source):
    """Known answer: fc7 zeroed outputs a constant, so the top probe is at chance, the
    top keeps nothing of the best probe and the advice moves to an earlier depth."""
    model, _ = source
    broken = copy.deepcopy(model)
    with torch.no_grad():
        for p in broken.blocks[-1].parameters():
            p.zero_()
    ev = measure(broken, make_task(TGT), per_class=40)
    assert ev.top_acc <= ev.chance + 0.05 and ev.retained <= 0.1
    assert ev.best_depth < broken.num_blocks
    adv = advise(broken, make_task(TGT), budget="tiny", progress=False,
                 thresholds=Thresholds.guide())
    assert adv.similarity == "dissimilar" and adv.size == "small"
    assert adv.recommendation.protocol == f"probe:{ev.best_depth}"
    assert "small and dissimilar" in adv.explanation
    assert f"{ev.top_acc:.3f}" in adv.explanation  # the numbers behind the scenario


def test_probe_agrees_with_sklearn_logistic_regression():
    """The evidence probe's fit = sklearn's multinomial logistic regression with
    C = 1 / (l2 N) (same objective: mean CE + l2/2 ||W||^2, bias unpenalised)."""
    from sklearn.linear_model import LogisticRegression

    g = np.random.default_rng(0)
    x = g.normal(size=(120, 6)) + np.repeat(np.eye(3, 6) * 2.0, 40, axis=0)
    y = np.repeat(np.arange(3), 40)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    ours = _path_accs(xt, yt, xt, yt, 3, max_iter=300)  # train accuracy along L2_GRID
    from transferlab.protocols.linear_probe import L2_GRID

    xs = x / x.std(0, ddof=1)  # the probe standardises by the train spread (torch: ddof 1)
    for acc, lam in zip(ours, L2_GRID):
        ref = LogisticRegression(C=1 / (lam * len(y)), max_iter=2000, tol=1e-8).fit(xs, y)
        assert abs(acc - ref.score(xs, y)) <= 1 / len(y) + 1e-9


def _cli(capsys, *argv):
    code = main(["advise", *argv, "--quiet"])
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_is_one_line_exit_2(source, capsys):
    _, ckpt = source
    code, err = _cli(capsys, "--source", ckpt, "--task", TGT, "--budget", "huge")
    assert code == 2 and "--budget='huge' is invalid: allowed is quick, standard" in err
    code, err = _cli(capsys, "--source", ckpt, "--task", "digits:classes=5-9:per_class=1:size=8")
    assert code == 2 and "validation example(s)" in err and "\n" not in err
    code, err = _cli(capsys, "--source", ckpt, "--task", "digits:classes=5-9:size=16")
    assert code == 2 and "size=8" in err and "\n" not in err


def test_thresholds_move_the_scenario(source):
    model, _ = source
    task = make_task(TGT)
    a = advise(model, task, budget="tiny", progress=False,
               thresholds=Thresholds.guide(size_k=12, retained_min=0.0))
    assert (a.size, a.similarity) == ("large", "similar")
    assert a.recommendation.label == "finetune (lr_mult 0.1)"
    # tiny: 2 epochs, raised to min_steps=4 steps: 45 examples are one batch of 64
    assert a.recommendation.epochs == 4 and a.recommendation.lr == 0.05
    with pytest.raises(UserError, match="verify=True"):
        advise(model, task, verify=True, budget="tiny")


@pytest.fixture(scope="module")
def verified(source, tmp_path_factory):
    """``transferlab advise --verify --json`` run once: (exit code, JSON, out folder)."""
    import contextlib
    import io

    _, ckpt = source
    out = tmp_path_factory.mktemp("advise") / "adv"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["advise", "--source", ckpt, "--task", TGT, "--verify", "--budget",
                     "tiny", "--workers", "1", "--out", str(out), "--json", "--quiet"])
    return code, json.loads(buf.getvalue()), out


def test_verify_race_json_and_report(verified):
    code, data, out = verified
    assert code == 0
    for key in ("scenario", "recommendation", "alternatives", "explanation", "verified"):
        assert key in data
    assert {"size", "similarity", "evidence"} <= set(data["scenario"])
    assert {"protocol", "lr", "lr_mult", "epochs"} <= set(data["recommendation"])
    v = data["verified"]
    assert len(v) == 3 and v[0]["label"] == data["recommendation"]["label"]
    for c in v:
        assert {"protocol", "val_acc", "test_acc", "wall_time_s"} <= set(c)
    finalists = [c for c in v if c["finalist"]]
    solvers = [c for c in v if c["protocol"] == "linear-probe"
               or c["protocol"].startswith("probe:")]
    # the best quarter (rounded up) of the SGD candidates, and the best solver
    assert len(finalists) == min(1, len(solvers)) + -(-(len(v) - len(solvers)) // 4)
    race = data["race"]
    assert race["winner"] == max(finalists, key=lambda c: c["val_acc"])["label"]
    assert race["overturned"] == (race["winner"] != v[0]["label"])
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "Verified" in html and data["recommendation"]["label"] in html


@needs_chromium
def test_verify_report_renders_in_headless_chromium(verified):
    _, data, out = verified
    text = check_in_chromium((out / "report.html").resolve(), n_images=2)
    assert "Verified" in text and data["recommendation"]["label"] in text


def test_the_race_compares_fine_tunes_with_fine_tunes():
    """A probe fitted to the end is not ranked against fine-tunes at 15% of their epochs:
    the best solver waits in the final, and the best quarter of the SGD candidates joins
    it."""
    from transferlab.advise.rules import Candidate
    from transferlab.advise.verify import _halve

    cands = [Candidate("probe:2"), Candidate("linear-probe"),
             Candidate("finetune", 1.0, 10, 0.05), Candidate("finetune", 0.1, 10, 0.05),
             Candidate("scratch", 1.0, 10, 0.05)]
    vals = [0.9, 0.8, 0.5, 0.6, 0.4]
    results = {c.label: {"rungs": [{"val_acc": a}]} for c, a in zip(cands, vals)}
    kept = _halve(cands, results, cands)
    assert [c.label for c in kept] == ["probe:2", "finetune (lr_mult 0.1)"]
