"""The decisions scoreboard (benchmarks/bench_decisions.py) end to end on one digits case:
measured into a store, scored; test accuracies never steer a pick, refusals are not
scored, the oracle is the best mean test accuracy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from transferlab.cases import get_cases
from transferlab.cases.measure import Store, measure_case

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_decisions.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_decisions", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decisions")
    case = get_cases("digits", split="heldout")[0]
    store = Store(folder / "store.jsonl")
    measure_case(store, case, [0, 1, 2], folder / "sources")
    return case, folder / "store.jsonl"


def _rows(bench, case, path, cb=None):
    out = bench.case_rows(Store(path), case, cb)
    return out, {r["rule"]: r for r in out["rows"]}


def test_scores_every_rule_against_the_test_oracle(bench, measured):
    case, path = measured
    out, by = _rows(bench, case, path)
    means = out["test_mean"]
    oracle = max(sorted(means), key=means.get)
    for rule, r in by.items():
        assert r["oracle"] == oracle and r["regret"] == pytest.approx(
            means[oracle] - means[r["pick"]]) and r["regret"] >= 0
        assert r["within_1pt"] == (r["regret"] <= 0.01 + 1e-12)
        assert r["cost_ratio"] > 0
    from transferlab.cases import CONSTANT_RULES
    assert set(CONSTANT_RULES) <= set(by)
    assert {"advise", "LogME's best depth", "always scratch"} <= set(by)
    # freeze:0 is measured once, as finetune at lr_mult 1
    assert by["always freeze:0"]["pick"] == "finetune (lr_mult 1)"


def test_test_accuracies_never_steer_a_pick(bench, measured, tmp_path):
    case, path = measured
    _, before = _rows(bench, case, path)
    rng = np.random.default_rng(0)
    shuffled = tmp_path / "store.jsonl"
    lines = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "trial":
            r["test_acc"] = float(rng.uniform())  # test accuracies replaced by noise
        lines.append(json.dumps(r))
    shuffled.write_text("\n".join(lines) + "\n")
    _, after = _rows(bench, case, shuffled)
    assert {k: r["pick"] for k, r in after.items()} == {k: r["pick"] for k, r in before.items()}


def test_a_refusal_is_not_scored(bench, measured, tmp_path):
    case, path = measured
    copy = tmp_path / "store.jsonl"
    copy.write_text(path.read_text())
    st = Store(copy)
    st.put({"kind": "verify", "case": case.name, "winner": None, "advised": None,
            "refused": "advise: every candidate diverged or sits at chance", "cpu_s": 1.0,
            "wall_s": 1.0})
    out, by = _rows(bench, case, copy)
    assert out["advise_refused"] and "advise" not in by and "advise --verify" not in by
    assert "always scratch" in by  # the constant rules are still scored
