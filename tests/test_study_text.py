"""The text study: statistics and findings on a synthetic results table (known answers), the
config's checks, and one tiny end-to-end run (random tiny BERT, synthetic CSV, resumable)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from transferlab.errors import UserError
from transferlab.studies.text.config import TextConfig
from transferlab.studies.text.study import condition, failed_trials, findings, statistics


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def table():
    rows = []
    for unit in range(4):
        for cond, acc in [("layer-mix", 0.80 + 0.01 * unit), ("finetune@0.1", 0.70 + 0.01 * unit
                                                              + 0.002 * (unit % 2)),
                          ("linear-probe", 0.79 + 0.01 * unit), ("finetune@1", 0.5)]:
            rows.append({"regime": "k=10", "condition": cond, "unit": unit, "test_acc": acc,
                         "wall_s": 2.0})
    return pd.DataFrame(rows)


def test_statistics_and_findings_known_answers():
    stats = statistics(table())
    s = stats["k=10"]["layer-mix"]
    assert s["mean"] == pytest.approx(0.815) and s["n"] == 4 and s["wall_s"] == 2.0
    lo, hi = s["ci"]
    assert lo < 0.815 < hi
    found = {f["claim"]: f for f in findings(stats)}
    fb = found["feature-based (layer-mix) vs fine-tuning (finetune@0.1)"]["tests"][0]
    assert fb["mean_diff"] == pytest.approx(0.099) and fb["higher"]
    lp = found["layer-mix vs linear-probe"]["tests"][0]
    assert lp["mean_diff"] == pytest.approx(0.01)  # constant difference: p = 0 or None
    assert condition({"protocol": "finetune", "lr_mult": 0.1}) == "finetune@0.1"
    assert condition({"protocol": "freeze:3", "lr_mult": None}) == "freeze:3"
    assert condition({"protocol": "freeze", "depth": 3.0}) == "freeze:3"
    assert condition({"protocol": "linear-probe", "depth": float("nan")}) == "linear-probe"


def test_failed_and_diverged_trials_are_counted_with_their_cause():
    df = table().assign(status="done", outcome="ok", error=None, reason="")
    df.loc[0, ["status", "error"]] = ["failed", "RuntimeError: boom"]
    df.loc[4, ["status", "error"]] = ["failed", "RuntimeError: boom"]  # same cell, unit 1
    df.loc[2, ["outcome", "reason"]] = ["diverged", "training loss became nan"]
    got = failed_trials(df)
    assert (got["n"], got["of"]) == (3, 16)
    cells = {c["condition"]: c for c in got["by_condition"]}
    assert cells["layer-mix"] == {"regime": "k=10", "condition": "layer-mix", "n": 2,
                                  "error": "RuntimeError: boom"}
    assert cells["linear-probe"]["error"] == "training loss became nan"
    assert failed_trials(table().assign(status="done"))["n"] == 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"max_length": 0}, "--max-length=0 is invalid"),
    ({"task": "banking77:per_class=5"}, "a task without per_class"),
    ({"shots": [0]}, "--shots=[0] is invalid"),
    ({"episodes": 0}, "--episodes=0 is invalid"),
])
def test_config_rejects(kwargs, fragment):
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        TextConfig(**kwargs)


def test_tiny_end_to_end_and_resume(tmp_path, isolated_data):
    pytest.importorskip("transformers")
    from test_text_tasks import toy_rows, write_csv

    from transferlab.checkpoint import save_checkpoint
    from transferlab.models import build_model
    from transferlab.studies import get_study

    csv_path = write_csv(tmp_path / "toy.csv", toy_rows(60))
    model = build_model("bert", 3, vocab_size=259, hidden_size=8, num_layers=2,
                        intermediate_size=16)
    save_checkpoint(tmp_path / "src", model, {"task": "random", "classes": ["a", "b", "c"]})
    study = get_study("text")
    cfg = study.config(source=str(tmp_path / "src"), task=f"csv:path={csv_path}:tokenizer=bytes",
                       max_length=16, shots=[4], full=False, episodes=2, depths=[1],
                       out=str(tmp_path / "out"))
    result = study.run(cfg, progress=False)
    conds = set(result["stats"]["k=4"])
    assert conds == {"linear-probe", "layer-mix", "freeze:1", "finetune@1", "finetune@0.1"}
    assert all(s["n"] == 2 for s in result["stats"]["k=4"].values())
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["provenance"] and saved["stats"].keys() == result["stats"].keys()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64" in html and "layer-mix" in html
    assert result["failed"] == {"n": 0, "of": 10, "by_condition": []}
    assert "All 10 trials finished." in html
    from transferlab.sweep import load_results

    n = len(load_results(tmp_path / "out" / "text.sqlite"))
    again = study.run(cfg, progress=False)  # resumes: nothing new
    assert len(load_results(tmp_path / "out" / "text.sqlite")) == n == 10
    assert again["stats"] == result["stats"]
