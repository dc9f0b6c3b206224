"""The case library (registry, config checks, the fixed dev / held-out split) and the
decision scoreboard's scoring (benchmarks/bench_decisions.py) on known answers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from transferlab.cases import CONSTANT_RULES, CaseConfig, case_sets, get_cases
from transferlab.errors import UserError

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_decisions.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_decisions", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_set_and_its_fixed_split():
    assert "digits" in case_sets()
    cases = get_cases("digits")
    assert len(cases) == 6 and len({c.name for c in cases}) == 6
    # the declared rule: k = 10 is dev, every other k held out, in both directions
    assert {c.name for c in get_cases("digits", split="dev")} == {"digits04-k10",
                                                                  "digits59-k10"}
    assert all(c.split == ("dev" if c.k == 10 else "heldout") for c in cases)
    assert cases[0].target_task == "digits:classes=5-9:per_class=5"
    assert set(CONSTANT_RULES.values()) <= set(cases[0].candidates)


def test_labels_resolve_to_protocols():
    c = get_cases("digits")[0]
    assert c.protocol_of("finetune (lr_mult 0.1)", 7) == ("finetune", 0.1)
    assert c.protocol_of("freeze:half", 7) == ("freeze:3", None)
    assert c.protocol_of("linear-probe", 7) == ("linear-probe", None)


@pytest.mark.parametrize("kwargs, param", [({"split": "test"}, "split"), ({"k": 3}, "k"),
                                           ({"k": True}, "k"),
                                           ({"target": "digits:per_class=5"}, "target"),
                                           ({"candidates": ()}, "candidates"),
                                           ({"name": ""}, "name")])
def test_case_config_refuses_bad_values(kwargs, param):
    base = dict(name="x", source_task="digits:classes=0-4", target="digits:classes=5-9", k=10,
                split="dev")
    with pytest.raises(UserError, match=param):
        CaseConfig(**{**base, **kwargs})


def test_unknown_set_or_split_is_one_clear_error():
    with pytest.raises(UserError, match="cases='nope' is invalid"):
        get_cases("nope")
    with pytest.raises(UserError, match="split"):
        get_cases("digits", split="test")


def test_scoreboard_scores_picks_against_the_test_oracle():
    b = _bench()
    measured = {"a": [0.8, 0.9, 0.85], "b": [0.7, 0.7, 0.7], "c": [0.846, 0.846, 0.846]}
    rows = {r["rule"]: r for r in b.score_rules(measured, {"r1": "a", "r2": "b", "r3": "c",
                                                           "r4": "z"}, {"r1": 2.0})}
    assert rows["r1"]["oracle"] == "a" and rows["r1"]["regret"] == pytest.approx(0.0)
    assert rows["r2"]["regret"] == pytest.approx(0.15) and not rows["r2"]["within_1pt"]
    assert rows["r3"]["regret"] == pytest.approx(0.004) and rows["r3"]["within_1pt"]
    assert rows["r4"]["regret"] is None and rows["r1"]["cost_s"] == 2.0
    s = b.summarize([r for r in rows.values() if r["rule"] != "r4"])
    assert s["r2"]["mean_regret"] == pytest.approx(0.15) and s["r3"]["within_1pt"] == 1.0


def test_every_quick_set_and_its_hashed_split():
    from transferlab.cases import hashed_split

    for name in ("effnet", "convnet", "synthetic"):
        cases = get_cases(name)
        assert cases and all(c.split == hashed_split(c.name) for c in cases)
        assert len({c.name for c in cases}) == len(cases)
    quick = [c for n in ("effnet", "convnet", "synthetic") for c in get_cases(n)
             if c.tier == "quick"]
    splits = [c.split for c in quick]
    # the rule reads the name only; on these names it gives both splits a share
    assert 0.3 < splits.count("dev") / len(splits) < 0.7
    assert hashed_split("effnet32-cifar10-k20") == hashed_split("effnet32-cifar10-k20")
    assert all(c.tier == "standard" and c.pretrained == "minilm" for c in get_cases("minilm"))
    eff = [c for c in get_cases("effnet") if c.tier == "quick"]
    assert all(c.pretrained == "efficientnet_lite0" and c.image_size == 32 for c in eff)


def test_a_case_is_pretrained_or_has_a_source_task():
    with pytest.raises(UserError, match="source_task"):
        CaseConfig(name="x", source_task=None, target="digits:classes=5-9", k=10, split="dev")
    with pytest.raises(UserError, match="pretrained"):
        CaseConfig(name="x", source_task=None, pretrained="resnet", target="digits", k=10,
                   split="dev")
