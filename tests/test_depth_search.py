"""``best_depth`` / ``transferlab depth``: the right depth on a case with a known answer,
validation-only selection, the budget's cap, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from transferlab.cli import main
from transferlab.data import from_arrays, make_task
from transferlab.errors import UserError
from transferlab.models import build_model
from transferlab.search import SearchBudget, best_depth

TRAIN = {"epochs": 5, "batch_size": 32, "lr": 0.05, "device": "cpu"}
# quick's walk and final check without its cap: the cap depends on measured times (on a
# shared CPU, noise), the rest of the search does not
NOCAP = SearchBudget("nocap", patience=1, finalists=2, cap=1.0)


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 12)) * 3
    y = rng.integers(0, 3, 400)
    x = centres[y] + rng.standard_normal((400, 12))
    return make_task("vec", dataset=from_arrays(x, y, name="vec"))


@pytest.fixture(scope="module")
def broken_source(task):
    """Blocks 1-2 keep the clusters apart (random ReLU features of separated clusters);
    block 3 maps everything to one point (zero weights, bias 1), so any depth n >= 3
    leaves the head a constant input: chance. Trained, block 3 recovers (its ReLU is on,
    so gradients flow). The known answer: a depth <= 2."""
    torch.manual_seed(0)
    # raw inputs, as this known answer was built (standardisation: tests/test_raw_scale.py)
    model = build_model("mlp", 3, **task.model_kwargs, width=16, depth=4, standardize=False)
    with torch.no_grad():
        model.blocks[2][0].weight.zero_()
        model.blocks[2][0].bias.fill_(1.0)
    return model


def test_picks_a_depth_below_the_useless_blocks(task, broken_source):
    res = best_depth(broken_source, task, budget=NOCAP, seeds=(0,), train=TRAIN)
    assert res.depth <= 2 and res.protocol == f"freeze:{res.depth}"
    assert res.val_acc > 0.9 and res.test_acc > 0.9  # chance is 1/3
    walk = {e["depth"]: e["value"] for e in res.evidence if e["stage"] == "walk"}
    assert walk[4] < 0.6 and walk[0] > 0.9  # both ends measured: the deep one is useless
    assert all(v < 0.6 for d, v in walk.items() if d >= 3)
    probes = {e["depth"]: e["value"] for e in res.evidence if e["stage"] == "probe"}
    assert sorted(probes) == [1, 2, 3, 4] and probes[2] > 0.9 > 0.6 > probes[3]
    d = res.to_dict()
    assert {"depth", "protocol", "val_acc", "test_acc", "wall_time_s", "evidence"} <= set(d)
    json.dumps(d)  # JSON-able as it is


def test_test_labels_never_steer_the_choice(task, broken_source):
    g = torch.Generator().manual_seed(1)
    shuffled = dataclasses.replace(task, y_test=task.y_test[torch.randperm(task.n_test,
                                                                            generator=g)])
    a = best_depth(broken_source, task, budget=NOCAP, seeds=(0, 1), train=TRAIN)
    b = best_depth(broken_source, shuffled, budget=NOCAP, seeds=(0, 1), train=TRAIN)
    assert (a.depth, a.val_acc) == (b.depth, b.val_acc)
    strip = [({k: v for k, v in e.items() if k not in ("compute_s", "test_acc")})
             for e in a.evidence]
    assert strip == [({k: v for k, v in e.items() if k not in ("compute_s", "test_acc")})
                     for e in b.evidence]
    assert a.test_acc != b.test_acc  # the test split was scored, only after the choice
    assert all("test_acc" not in e for e in a.evidence if e["stage"] != "final")
    finals = [e for e in a.evidence if e["stage"] == "final"]
    assert 1 <= len(finals) <= 2 and all(e["seeds"] == [0, 1] for e in finals)


def test_the_cap_stops_the_walk_and_thorough_tries_every_depth(task, broken_source):
    tight = SearchBudget("tight", patience=1, finalists=2, cap=1e-6)
    res = best_depth(broken_source, task, budget=tight, train=TRAIN)
    stages = [e["stage"] for e in res.evidence]
    assert stages.count("walk") == 1 and stages.count("final") == 1  # the first depth only
    assert any("cap" in note for note in res.notes)
    full = best_depth(broken_source, task, budget="thorough", train=TRAIN)
    assert sorted(e["depth"] for e in full.evidence if e["stage"] == "walk") == [0, 1, 2, 3, 4]
    assert full.depth <= 2


def test_bad_input_is_one_clear_error(task, broken_source):
    with pytest.raises(UserError, match=r"depths=\[0, 9\] is invalid: allowed is depths in "
                                        r"0\.\.4"):
        best_depth(broken_source, task, depths=[0, 9])
    with pytest.raises(UserError, match="budget='fast' is invalid: allowed is quick, standard"):
        best_depth(broken_source, task, budget="fast")
    with pytest.raises(UserError, match="seeds=\\[\\] is invalid"):
        best_depth(broken_source, task, seeds=())
    few = make_task("digits:classes=0-2:per_class=3:size=8")
    with pytest.raises(UserError, match="has no validation split"):
        best_depth(build_model("mlp", 3, 1, 8, width=8, depth=2), few)


def test_cli_json_and_bad_input(tmp_path, capsys):
    src = tmp_path / "src"
    assert main(["pretrain", "--task", "digits:classes=0-4:size=8", "--arch", "mlp",
                 "--arch-kwargs", '{"width": 16, "depth": 3}', "--epochs", "2", "--quiet",
                 "--out", str(src)]) == 0
    capsys.readouterr()
    base = ["depth", "--source", str(src), "--task", "digits:classes=5-9:per_class=20:size=8",
            "--epochs", "3", "--quiet"]
    assert main([*base, "--json", "--seeds", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"depth", "protocol", "val_acc", "test_acc", "wall_time_s", "evidence"} <= set(out)
    assert 0 <= out["depth"] <= 3 and out["seeds"] == [0, 1]
    for extra, match in [(["--depths", "0,9"], "depths=[0, 9] is invalid"),
                         (["--budget", "fast"], "budget='fast' is invalid"),
                         (["--seeds", "0"], "--seeds=0 is invalid")]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err


def test_finds_a_unique_best_depth_above_0():
    """A known answer with a unique best depth of 1 (freeze:1), neither end:

    * block 1 reads 4 signal inputs and gives zero weight to 20 nuisance inputs of scale
      1e3; fine-tuned (freeze:0), its gradients carry that scale and training diverges or
      falls to chance;
    * block 2 (of 3) maps everything to one point (zero weights, bias 1): frozen (n >= 2)
      the head sees a constant; trained (n = 1) it recovers (to 0.84-0.88 in 5 epochs).
    So freeze:1 is the only depth that keeps block 1 and trains block 2."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 4)) * 3
    y = rng.integers(0, 3, 400)
    x = np.concatenate([centres[y] + rng.standard_normal((400, 4)),
                        rng.standard_normal((400, 20)) * 1e3], axis=1)
    task = make_task("vec", dataset=from_arrays(x, y, name="nuisance"))
    torch.manual_seed(0)
    model = build_model("mlp", 3, **task.model_kwargs, width=16, depth=3, standardize=False)
    with torch.no_grad():
        model.blocks[0][1].weight[:, 4:].zero_()  # [0][0] is the Flatten
        model.blocks[1][0].weight.zero_()
        model.blocks[1][0].bias.fill_(1.0)
    thorough = best_depth(model, task, budget="thorough", seeds=(0,), train=TRAIN)
    val = {e["depth"]: e["value"] for e in thorough.evidence if e["stage"] == "walk"}
    assert val[1] > 0.8 and all(v < 0.6 for d, v in val.items() if d != 1), val
    res = best_depth(model, task, budget=NOCAP, seeds=(0,), train=TRAIN)
    assert res.depth == 1 and res.protocol == "freeze:1" and res.test_acc > 0.75
