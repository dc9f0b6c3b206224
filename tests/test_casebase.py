"""The advisor's case base (advise/casebase.py): nearest development cases by evidence
decide the family, leave-one-out picks the number of neighbours, and the case library's
measuring store resumes."""

from __future__ import annotations

import json

import pytest

from transferlab.advise.casebase import FEATURES, CaseBase, DevCase, features
from transferlab.advise.rules import FAMILIES
from transferlab.errors import UserError


def _regret(best: str, gap: float = 0.1) -> dict[str, float]:
    return {f: 0.0 if f == best else gap for f in FAMILIES}


def _ev(k: int, best: float, top: float, best_depth: int = 3, L: int = 4,
        logme: float = 0.5) -> dict:
    return {"chance": 0.1, "examples_per_class": k, "best_acc": best, "top_acc": top,
            "best_depth": best_depth, "top_depth": L,
            "per_depth": [{"logme": 0.0}] * (L - 1) + [{"logme": logme}]}


def _two_clusters() -> list[DevCase]:
    # small k with good features: the linear probe is best; large k with weak features:
    # scratch is best. The two groups are far apart in every feature.
    small = [DevCase(f"s{i}", features(_ev(5, 0.9 + i / 100, 0.9, 4)), _regret("linear-probe"))
             for i in range(3)]
    large = [DevCase(f"l{i}", features(_ev(500, 0.3 + i / 100, 0.2, 1)), _regret("scratch"))
             for i in range(3)]
    return small + large


def test_nearest_cases_decide_and_are_named():
    cb = CaseBase().fit(_two_clusters())
    order, rests_on = cb.rank(_ev(6, 0.88, 0.87, 4))
    assert order[0] == "linear-probe" and {r["case"] for r in rests_on} <= {"s0", "s1", "s2"}
    order, rests_on = cb.rank(_ev(400, 0.32, 0.25, 1))
    assert order[0] == "scratch" and rests_on[0]["case"].startswith("l")
    assert sorted(order) == sorted(FAMILIES)  # a full ranking, each family once


def test_leave_one_out_chooses_the_neighbourhood_size():
    cb = CaseBase().fit(_two_clusters())
    # with 3 cases per cluster, 1 or 2 neighbours stay inside the cluster (LOO regret 0);
    # 5 reach into the other one; ties go to fewer neighbours
    assert cb.loo_[1] == 0.0 and cb.loo_[5] > 0.0 and cb.n_neighbors_ == 1


def test_round_trip_and_refusals(tmp_path):
    cb = CaseBase().fit(_two_clusters())
    d = json.loads(json.dumps(cb.to_dict()))
    again = CaseBase.from_dict(d)
    ev = _ev(6, 0.88, 0.87, 4)
    assert again.rank(ev)[0] == cb.rank(ev)[0] and again.n_neighbors_ == cb.n_neighbors_
    from transferlab.advise.casebase import load
    with pytest.raises(UserError, match="cases="):
        load(tmp_path / "missing.json")
    with pytest.raises(UserError, match="refit"):
        CaseBase.from_dict({**d, "features": ["other"]})
    with pytest.raises(UserError, match="cases"):
        CaseBase().fit(_two_clusters()[:1])
    bad = DevCase("x", [0.0] * len(FEATURES), {"scratch": 0.0})
    with pytest.raises(UserError, match="every family"):
        CaseBase().fit([bad, bad])


def test_freeze_0_is_finetune_at_lr_mult_1():
    """The store measures freeze:0 as 'finetune (lr_mult 1)' (cases.measure.ALIASES):
    the two protocols must train the same weights."""
    import torch

    from transferlab.api import transfer
    from transferlab.cases.measure import ALIASES
    from transferlab.data import make_task
    from transferlab.models import build_model

    assert ALIASES["freeze:0"] == "finetune (lr_mult 1)"
    task = make_task("digits:classes=5-9:per_class=8")
    src = build_model("mlp", 5, 1, 8, width=16, depth=2)
    a = transfer(src, task, "freeze:0", {"epochs": 2}, seed=0, progress=False).model
    b = transfer(src, task, "finetune", {"epochs": 2, "lr_mult": 1.0}, seed=0,
                 progress=False).model
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), na


def test_store_resumes_and_skips_what_it_has(tmp_path):
    from transferlab.cases.measure import Store

    st = Store(tmp_path / "s.jsonl")
    st.put({"kind": "trial", "case": "c", "label": "scratch", "seed": 0, "test_acc": 0.5})
    st.put({"kind": "evidence", "case": "c", "evidence": {}, "time_s": 1.0})
    again = Store(tmp_path / "s.jsonl")
    assert again.get("trial", "c", "scratch", 0)["test_acc"] == 0.5
    assert again.get("evidence", "c")["time_s"] == 1.0
    assert again.get("trial", "c", "scratch", 1) is None
    assert list(again.trials("c")) == ["scratch"]


def test_advise_names_the_cases_it_rests_on(tmp_path):
    from transferlab.advise import advise
    from transferlab.data import make_task
    from transferlab.models import build_model

    path = tmp_path / "cb.json"
    path.write_text(json.dumps(CaseBase(n_neighbors=2).fit(_two_clusters()).to_dict()))
    task = make_task("digits:classes=5-9:per_class=12")
    src = build_model("mlp", 5, 1, 8, width=16, depth=3)
    a = advise(src, task, budget="tiny", progress=False, cases=str(path))
    assert len(a.rests_on) == 2 and all(r["case"][0] in "sl" for r in a.rests_on)
    assert "rests on" in a.explanation and a.rests_on[0]["case"] in a.explanation
    # the two nearest cases agree (same cluster), so the advice is that cluster's family
    assert a.recommendation.label in ("linear-probe", "scratch")
    assert a.to_dict()["rests_on"] == a.rests_on
    plain = advise(src, task, budget="tiny", progress=False, cases=False)
    assert plain.rests_on == [] and "rests on" not in plain.explanation
