"""Yosinski study end to end on digits with a tiny budget (two random splits), its design,
CLI and input errors."""

from __future__ import annotations

import json
import time

import pytest

from test_study_helpers import check_in_chromium, needs_chromium
from transferlab.cli import main
from transferlab.errors import UserError
from transferlab.studies import yosinski
from transferlab.studies.yosinski.conditions import design, sweep_specs
from transferlab.studies.yosinski.curves import CONDITIONS, RECIPES
from transferlab.sweep import load_results

DEPTHS = [1, 5]
SPLITS = [0, 1]
PER_SPLIT = len(CONDITIONS) * len(DEPTHS) + 1  # trials per split and seed


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("yosinski")
    t0 = time.perf_counter()
    curves = yosinski.run("digits", budget="tiny", seeds=1, split_seeds=SPLITS, depths=DEPTHS,
                          out=out, workers=1, progress=False)
    return out, curves, time.perf_counter() - t0


def test_study_writes_every_file_and_condition(study):
    out, curves, wall = study
    assert wall < 180  # 22 tiny trials (2 splits): 84 s measured at load 10 on 2 cores
    for name in ("yosinski.sqlite", "curves.json", "yosinski.png", "report.html"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "curves.json").read_text())
    assert saved["study"] == "yosinski" and saved["depths"] == DEPTHS
    assert set(saved["conditions"]) == set(CONDITIONS)
    for c in saved["conditions"].values():
        assert c["depth"] == DEPTHS and c["n"] == [2, 2] and c["seeds"] == [[0, 0], [0, 0]]
        assert c["split_seeds"] == [SPLITS, SPLITS]
        assert all(0 <= x <= 1 for v in c["values"] for x in v)
    assert saved["baseB"]["n"] == 2 and saved["baseB"]["split_seeds"] == SPLITS
    assert saved["settings"]["split_seeds"] == SPLITS
    halves = [(sp["classes_a"], sp["classes_b"]) for sp in saved["splits"]]
    assert [sp["split_seed"] for sp in saved["splits"]] == SPLITS and halves[0] != halves[1]
    for a, b in halves:
        assert len(a) == len(b) == 5 and sorted(a + b) == [str(i) for i in range(10)]
    assert (saved["classes_a"], saved["classes_b"]) == halves[0]
    assert saved["block_names"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    assert saved["settings"]["trials"] == PER_SPLIT * len(SPLITS)
    assert saved["settings"]["trials_failed"] == 0
    # Two units: every finding is tested (paired, df = 1), each test over both units.
    for f in saved["findings"][:4]:
        assert f["tests"] and all(t["n"] == 2 for t in f["tests"]), f
    report = (out / "report.html").read_text()
    assert "split seed" in report and "p (Holm)" in report
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
        assert saved["base_networks"][name]["values"] == [trained[sp[task]]
                                                          for sp in saved["splits"]]


@needs_chromium
def test_study_report_renders_in_headless_chromium(study):
    out, curves, _ = study
    body = check_in_chromium((out / "report.html").resolve(), n_images=1)
    assert "AnB vs BnB (specificity)" in body and "split seed" in body


def test_curves_are_the_stored_trials(study):
    out, curves, _ = study
    df = load_results(out / "yosinski.sqlite")
    assert len(df) == PER_SPLIT * len(SPLITS) and (df["status"] == "done").all()
    # Every trial is trained and tested on half B of its split.
    split_of = {sp["task_b"]: sp["split_seed"] for sp in curves["splits"]}
    assert set(df["task"]) == set(split_of)
    df["split_seed"] = df["task"].map(split_of)
    df = df.sort_values(["split_seed", "seed"])
    for name, (source, family) in RECIPES.items():
        rows = df[(df["source"] == source) & (df["protocol"] == family)]
        if name == "baseB":
            assert rows["test_acc"].tolist() == curves["baseB"]["values"]
            continue
        for i, d in enumerate(DEPTHS):
            stored = rows[rows["depth"] == d]["test_acc"].tolist()
            assert stored == curves["conditions"][name]["values"][i]


def test_rerun_resumes_and_cli_reports(study, capsys):
    out, curves, _ = study
    before = load_results(out / "yosinski.sqlite").set_index("key")["finished_at"]
    rc = main(["study", "yosinski", "--dataset", "digits", "--budget", "tiny", "--seeds", "1",
               "--split-seeds", "0,1", "--depths", "1,5", "--out", str(out), "--workers", "1",
               "--quiet", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    after = load_results(out / "yosinski.sqlite").set_index("key")["finished_at"]
    assert after.equals(before)  # nothing was trained again
    assert summary["files"]["report"].endswith("report.html")
    assert summary["means"]["AnB"] == curves["conditions"]["AnB"]["mean"]
    assert summary["split_seeds"] == SPLITS


def test_design_and_sweep_specs():
    d = design("digits", "random", seeds=2, budget="tiny", split_seeds=[3])
    (sp,) = d.splits
    assert sp.task_a == "digits:half=A:split_seed=3:per_class=20:val_per_class=5:size=8"
    assert sp.task_b.replace("half=B", "half=A") == sp.task_a
    assert sorted(sp.ids_a + sp.ids_b) == list(range(10)) and d.depths == [1, 2, 3, 4, 5, 6]
    transfer, rnd, base = sweep_specs(d)
    assert transfer["target"] == rnd["target"] == base["target"] == sp.task_b
    assert set(transfer["sources"]) == {"baseA", "baseB"}
    assert transfer["sources"]["baseA"]["pretrain"]["task"] == sp.task_a
    assert transfer["axes"] == {"protocol": ["reinit", "reinit+"], "depth": d.depths,
                                "seed": [0, 1]}
    # The control: baseA's own architecture and seed, never trained.
    assert rnd["sources"]["random"]["epochs"] == 0
    assert rnd["sources"]["random"]["pretrain"] == transfer["sources"]["baseA"]["pretrain"]
    assert rnd["axes"]["protocol"] == ["reinit"] and base["axes"]["protocol"] == ["scratch"]
    assert all(s["per_seed"] for spec in (transfer, rnd, base)
               for s in spec["sources"].values())


def test_split_seeds_default_to_the_budget_and_give_one_spec_set_each():
    quick = design("digits", seeds=1, budget="quick")
    assert quick.split_seeds == [0, 1] == list(range(quick.budget.split_seeds))
    specs = sweep_specs(quick)
    assert len(specs) == 6 and len({s["name"] for s in specs}) == 6
    assert [s["target"] for s in specs] == [quick.splits[0].task_b] * 3 + \
        [quick.splits[1].task_b] * 3
    assert design("digits", seeds=1, budget="tiny").split_seeds == [0]
    # A fixed split is one split, with no split seed.
    fixed = design("digits", classes_a="0-4", classes_b="5-9", seeds=1, budget="tiny")
    assert fixed.split_seeds == [None] and "split_seed" not in fixed.splits[0].task_b


def test_explicit_halves_and_budget_notes():
    d = design("digits", classes_a="0-2", classes_b="7,8,9", seeds=1, budget="quick")
    (sp,) = d.splits
    assert sp.classes_a == ["0", "1", "2"] and sp.classes_b == ["7", "8", "9"]
    assert sp.task_b.startswith("digits:classes=7-9:")
    # ~120 training images per digit: the quick budget's per_class cannot apply.
    assert d.budget.per_class > 120
    assert "per_class" not in sp.task_b
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
    ({"split_seeds": [0, 0]}, r"--split-seeds=\[0, 0\] is invalid: allowed is a list of "
                              r"distinct integers >= 0"),
    ({"split_seeds": []}, r"--split-seeds=\[\] is invalid"),
    ({"classes_a": "0-4", "classes_b": "5-9", "split_seeds": [1]},
     r"--split-seeds=\[1\] is invalid: allowed is only with --split random \(the halves of "
     r"--classes-a/--classes-b are fixed\); drop --split-seeds"),
])
def test_bad_input_is_a_user_error(kwargs, match):
    with pytest.raises(UserError, match=match):
        design("digits", **{"budget": "tiny", **kwargs})


def test_compare_must_be_the_other_split(study, tmp_path):
    out, _, _ = study
    with pytest.raises(UserError, match=r"is also a random-split result"):
        yosinski.run("digits", budget="tiny", seeds=1, depths=DEPTHS, out=out, workers=1,
                     progress=False, compare=out / "curves.json", split_seeds=SPLITS)
    with pytest.raises(UserError, match=r"split_seed and split_seeds were both given"):
        yosinski.run("digits", split_seed=0, split_seeds=[1], out=tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match=r"is not a yosinski curves.json"):
        yosinski.load_curves(tmp_path / "x.json")
