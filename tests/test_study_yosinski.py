"""Yosinski study end to end on digits with a tiny budget, its design, CLI and input errors."""

from __future__ import annotations

import json
import time

import pytest

from transferlab.cli import main
from transferlab.errors import UserError
from transferlab.studies import yosinski
from transferlab.studies.conditions import design, sweep_specs
from transferlab.studies.curves import CONDITIONS, RECIPES
from transferlab.sweep import load_results

DEPTHS = [1, 5]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("yosinski")
    t0 = time.perf_counter()
    curves = yosinski.run("digits", budget="tiny", seeds=1, depths=DEPTHS, out=out, workers=1,
                          progress=False)
    return out, curves, time.perf_counter() - t0


def test_study_writes_every_file_and_condition(study):
    out, curves, wall = study
    assert wall < 60
    for name in ("yosinski.sqlite", "curves.json", "yosinski.png", "report.html"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "curves.json").read_text())
    assert saved["study"] == "yosinski" and saved["depths"] == DEPTHS
    assert set(saved["conditions"]) == set(CONDITIONS)
    for c in saved["conditions"].values():
        assert c["depth"] == DEPTHS and c["n"] == [1, 1] and c["seeds"] == [[0], [0]]
        assert all(0 <= v[0] <= 1 for v in c["values"])
    assert saved["baseB"]["n"] == 1
    a, b = saved["classes_a"], saved["classes_b"]
    assert len(a) == len(b) == 5 and sorted(a + b) == [str(i) for i in range(10)]
    assert saved["block_names"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    assert saved["settings"]["trials"] == len(CONDITIONS) * len(DEPTHS) + 1
    assert saved["settings"]["trials_failed"] == 0
    assert {f["key"] for f in saved["findings"]} == {"specificity", "coadaptation",
                                                     "finetune_boost", "random_features",
                                                     "dissimilar"}
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # The base networks' accuracies are those of the sweep's cached pretrained sources.
    metas = [json.loads(p.read_text()) for p in
             (out / "yosinski.sqlite.cache" / "sources").glob("*/source.json")]
    trained = {m["task"]: m["metrics"]["test_acc"] for m in metas
               if m["config"]["train"]["epochs"] > 0}
    for name, task in (("baseA", "task_a"), ("baseB", "task_b")):
        assert saved["base_networks"][name]["values"] == [trained[saved["settings"][task]]]


def test_curves_are_the_stored_trials(study):
    out, curves, _ = study
    df = load_results(out / "yosinski.sqlite")
    assert len(df) == len(CONDITIONS) * len(DEPTHS) + 1 and (df["status"] == "done").all()
    for name, (source, family) in RECIPES.items():
        rows = df[(df["source"] == source) & (df["protocol"] == family)]
        if name == "baseB":
            assert rows["test_acc"].tolist() == curves["baseB"]["values"]
            continue
        for i, d in enumerate(DEPTHS):
            stored = rows[rows["depth"] == d]["test_acc"].tolist()
            assert stored == curves["conditions"][name]["values"][i]
    # Every trial is trained and tested on half B.
    assert set(df["task"]) == {curves["settings"]["task_b"]}


def test_rerun_resumes_and_cli_reports(study, capsys):
    out, curves, _ = study
    before = load_results(out / "yosinski.sqlite").set_index("key")["finished_at"]
    rc = main(["study", "yosinski", "--dataset", "digits", "--budget", "tiny", "--seeds", "1",
               "--depths", "1,5", "--out", str(out), "--workers", "1", "--quiet", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    after = load_results(out / "yosinski.sqlite").set_index("key")["finished_at"]
    assert after.equals(before)  # nothing was trained again
    assert summary["files"]["report"].endswith("report.html")
    assert summary["means"]["AnB"] == curves["conditions"]["AnB"]["mean"]


def test_design_and_sweep_specs():
    d = design("digits", "random", seeds=2, budget="tiny", split_seed=3)
    assert d.task_a == "digits:half=A:split_seed=3:per_class=20:val_per_class=5:size=8"
    assert d.task_b.replace("half=B", "half=A") == d.task_a
    assert sorted(d.ids_a + d.ids_b) == list(range(10)) and d.depths == [1, 2, 3, 4, 5, 6]
    transfer, rnd, base = sweep_specs(d)
    assert transfer["target"] == rnd["target"] == base["target"] == d.task_b
    assert set(transfer["sources"]) == {"baseA", "baseB"}
    assert transfer["sources"]["baseA"]["pretrain"]["task"] == d.task_a
    assert transfer["axes"] == {"protocol": ["reinit", "reinit+"], "depth": d.depths,
                                "seed": [0, 1]}
    # The control: baseA's own architecture and seed, never trained.
    assert rnd["sources"]["random"]["epochs"] == 0
    assert rnd["sources"]["random"]["pretrain"] == transfer["sources"]["baseA"]["pretrain"]
    assert rnd["axes"]["protocol"] == ["reinit"] and base["axes"]["protocol"] == ["scratch"]
    assert all(s["per_seed"] for spec in (transfer, rnd, base)
               for s in spec["sources"].values())


def test_explicit_halves_and_budget_notes():
    d = design("digits", classes_a="0-2", classes_b="7,8,9", seeds=1, budget="quick")
    assert d.classes_a == ["0", "1", "2"] and d.classes_b == ["7", "8", "9"]
    assert d.task_b.startswith("digits:classes=7-9:")
    # ~120 training images per digit: the quick budget's per_class cannot apply.
    assert d.budget.per_class > 120
    assert "per_class" not in d.task_b
    assert any(f"per_class {d.budget.per_class} >" in n for n in d.notes)


@pytest.mark.parametrize("kwargs, match", [
    ({"budget": "huge"}, r"--budget='huge' is invalid: allowed is quick, standard, full"),
    ({"split": "dissimilar"}, r"--split='dissimilar' is invalid: allowed is random for "
                              r"'digits'.*--classes-a and --classes-b"),
    ({"classes_a": "0,1"}, r"--classes-a and --classes-b must be given together"),
    ({"classes_a": "0,1", "classes_b": "1,2"}, r"--classes-b='1,2' is invalid.*remove \['1'\]"),
    ({"classes_a": "0", "classes_b": "1,2"}, r"--classes-a='0' is invalid: allowed is at "
                                             r"least 2 classes"),
    ({"depths": [0, 7]}, r"--depths=\[0, 7\] is invalid: allowed is values in 1..6"),
    ({"seeds": 0}, r"--seeds=0 is invalid"),
    ({"split": "halves"}, r"--split='halves' is invalid: allowed is random or dissimilar"),
])
def test_bad_input_is_a_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        design("digits", **{"budget": "tiny", **kwargs})


def test_compare_must_be_the_other_split(study, tmp_path):
    out, _, _ = study
    with pytest.raises(UserError, match=r"is also a random-split result"):
        yosinski.run("digits", budget="tiny", seeds=1, depths=DEPTHS, out=out, workers=1,
                     progress=False, compare=out / "curves.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match=r"is not a yosinski curves.json"):
        yosinski.load_curves(tmp_path / "x.json")
