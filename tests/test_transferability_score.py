"""Scoring a model on a task (train split only, one forward pass) and ``transferlab rank``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from transferlab.checkpoint import save_checkpoint
from transferlab.cli import main
from transferlab.data import make_task
from transferlab.models import build_model
from transferlab.transferability import (h_score, leep, logme, nce, score, score_all,
                                         transrate)

TASK = "digits:classes=0-2:per_class=40:size=8"  # n >> feature dims: well conditioned


@pytest.fixture(scope="module")
def task():
    return make_task(TASK)


def _net(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("convnet", 10, 1, 8, width=4, fc_width=16).eval()


def test_default_depth_scores_the_heads_input(task):
    model = _net()
    with torch.no_grad():
        feats = model.features(task.x_train, model.num_blocks).flatten(1).numpy()
    labels = task.y_train.numpy()
    assert score(model, task, "logme") == pytest.approx(logme(feats, labels), abs=1e-5)
    assert score(model, task, "hscore") == pytest.approx(h_score(feats, labels), rel=1e-4)
    assert score(model, task, "transrate") == pytest.approx(transrate(feats, labels),
                                                             rel=1e-4)


def test_intermediate_conv_depth_is_average_pooled(task):
    model = _net()
    with torch.no_grad():
        h = model.features(task.x_train, 2)
    assert h.dim() == 4
    pooled = h.mean(dim=(2, 3)).numpy()
    assert score(model, task, "logme", depth=2) == pytest.approx(
        logme(pooled, task.y_train.numpy()), abs=1e-5)


def test_leep_and_nce_read_the_source_head(task):
    model = _net()
    with torch.no_grad():
        probs = torch.softmax(model(task.x_train), 1).numpy()
    labels = task.y_train.numpy()
    assert score(model, task, "leep") == pytest.approx(leep(probs, labels), abs=1e-5)
    assert score(model, task, "nce") == pytest.approx(nce(probs.argmax(1), labels), abs=1e-9)


def test_only_the_train_split_is_read(task):
    model = _net()
    before = score(model, task, "logme")
    poisoned = dataclasses.replace(task, x_test=torch.full_like(task.x_test, float("nan")),
                                   x_val=torch.full_like(task.x_val, float("nan")))
    assert score(model, poisoned, "logme") == before


def test_all_depths_in_one_pass_match_one_depth_at_a_time(task):
    model = _net()
    rows = score_all(model, task, ["logme"], list(range(1, model.num_blocks + 1)))
    for r in rows:
        assert r["score"] == pytest.approx(score(model, task, "logme", r["depth"]), abs=1e-9)


def test_bad_metric_depth_and_missing_head(task):
    model = _net()
    with pytest.raises(ValueError, match="metric='bogus' is invalid: allowed are logme, leep"):
        score(model, task, "bogus")
    with pytest.raises(ValueError, match="depth=9 is invalid: allowed is 1..7 for this model"):
        score(model, task, "logme", depth=9)
    with pytest.raises(ValueError, match="depth=.* allowed is None for leep and nce"):
        score(model, task, "leep", depth=3)
    model.head = nn.Identity()
    with pytest.raises(ValueError, match="the model has no classifier head"):
        score(model, task, "leep")


def test_one_sample_per_class_is_rejected(task):
    one = make_task("digits:classes=0-2:per_class=1:size=8")
    with pytest.raises(ValueError, match="labels has 1 sample.s. of class 0: logme needs"):
        score(_net(), one, "logme")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return [str(save_checkpoint(root / f"net{s}", _net(s), {"task": TASK})) for s in (0, 1)]


def test_cli_ranks_depths_as_json(ckpts, capsys):
    assert main(["rank", "--source", ckpts[0], "--depths", "all", "--task", TASK,
                 "--metric", "logme", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ranked = out["scores"]["logme"]
    assert sorted(r["depth"] for r in ranked) == list(range(1, 8))
    assert [r["rank"] for r in ranked] == list(range(1, 8))
    assert all(a["score"] >= b["score"] for a, b in zip(ranked, ranked[1:]))


def test_cli_verify_reports_kendall_tau(ckpts, capsys):
    # a linear probe: 1 epoch of fine-tuning leaves both random nets at chance (0.330), a
    # decision `rank --verify` refuses (tests/test_bad_input_classes.py)
    assert main(["rank", "--sources", *ckpts, "--task", TASK, "--metric", "all", "--verify",
                 "--protocol", "linear-probe", "--epochs", "1", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["scores"]) == {"logme", "leep", "nce", "hscore", "reg_hscore", "transrate"}
    ver = out["verify"]
    assert set(ver["test_acc"]) == set(ckpts)
    for m, ranked in out["scores"].items():
        s = [r["score"] for r in ranked]
        a = [ver["test_acc"][r["candidate"]] for r in ranked]
        tau = ver["tau"][m]["kendall_tau"]
        # two candidates: tau is the sign agreement of the two differences (or undefined)
        expected = None if s[0] == s[1] or a[0] == a[1] else float(np.sign(
            (s[0] - s[1]) * (a[0] - a[1])))
        assert tau == expected


@pytest.mark.parametrize("argv,message", [
    (["--metric", "bogus"], "metric='bogus' is invalid"),
    (["--depths", "all", "--metric", "leep"], "--metric='leep' is invalid"),
    (["--depths", "0,9"], "--depths='0,9' is invalid: allowed is distinct depths in 1..7"),
    (["--task", "digits:classes=0-2:per_class=1:size=8"], "needs at least 2 per class"),
    (["--task", "digits:classes=0-2:per_class=8:size=16"], "cannot run on task"),
])
def test_cli_bad_input_exits_2_with_one_line(ckpts, capsys, argv, message):
    base = {"--task": TASK, "--metric": "logme"}
    args = ["rank", "--source", ckpts[0]]
    for k, v in base.items():
        if k not in argv:
            args += [k, v]
    assert main(args + argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("transferlab rank")


def test_cli_needs_exactly_one_way_to_give_candidates(ckpts, capsys):
    assert main(["rank", "--task", TASK]) == 2
    assert "pass exactly one of --sources" in capsys.readouterr().err


def test_cli_table_lists_candidates_best_first(ckpts, capsys):
    assert main(["rank", "--sources", *ckpts, "--task", TASK, "--metric", "transrate"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"transrate on {TASK}")
    rows = [ln.split() for ln in lines[1:3]]
    assert [r[0] for r in rows] == ["1", "2"] and {r[1] for r in rows} == set(ckpts)
    assert float(rows[0][2]) >= float(rows[1][2]) and rows[0][3].endswith("s")
