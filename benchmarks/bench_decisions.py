"""Scoreboard of decision rules on the case library's held-out cases (``transferlab.cases``).

Phases, over one resumable store (``--store``, one JSON line per measurement; see
``cases.measure``):

* ``measure``: for every case of ``--cases`` at ``--tier`` (dev and held-out alike), the
  advisor's evidence and every candidate (the advisor's candidate set, every constant
  rule's pick, LogME's best depth) over ``--seeds`` seeds;
* ``fit``: the advisor's case base from the DEVELOPMENT cases' validation accuracies
  (``advise.casebase``; default output: the packaged ``advise/casebase.json``);
* ``verify``: ``advise --verify`` (with that case base) on every held-out case;
* ``depth``: the exhaustive ``freeze:n`` sweep (every n, every seed) and ``best_depth``;
* ``score``: per held-out case the oracle (the candidate of best mean TEST accuracy, for
  scoring only) and, per rule, its pick, regret, within 1 / 0.5 point and cost (CPU
  seconds of one-thread processes, as a multiple of training every candidate once). Rules:
  advise, advise --verify, advise with the guide's table alone, depth, LogME's best depth,
  and the constant rules (``cases.CONSTANT_RULES``). A refusal (advise or depth exiting 2
  on a validation split too small to beat chance's bound) is recorded, not scored.

    OMP_NUM_THREADS=1 python benchmarks/bench_decisions.py measure --cases synthetic,convnet,effnet
    python benchmarks/bench_decisions.py fit
    OMP_NUM_THREADS=1 python benchmarks/bench_decisions.py verify
    OMP_NUM_THREADS=1 python benchmarks/bench_decisions.py depth --cases synthetic,convnet,effnet
    python benchmarks/bench_decisions.py score --out benchmarks/results/decisions_quick.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from transferlab.provenance import provenance

# What a rule costs: CPU seconds of one-thread processes (cases.measure.cpu_seconds), which
# another job on a shared machine barely changes; wall seconds are kept beside them.
COST = "cpu_s"


def score_rules(measured: dict[str, list[float]], picks: dict[str, str],
                costs: dict[str, float] | None = None, within: float = 0.01) -> list[dict]:
    """Rows (rule, pick, pick_acc, oracle, oracle_acc, regret, within_1pt, cost_s) from
    ``measured`` {label: per-seed TEST accuracies} and ``picks`` {rule: label}. The oracle
    (best mean test accuracy) scores the picks; nothing here chooses a pick."""
    means = {lab: float(np.mean(v)) for lab, v in measured.items() if v}
    oracle = max(sorted(means), key=lambda lab: means[lab])
    rows = []
    for rule, lab in picks.items():
        acc = means.get(lab)
        regret = None if acc is None else means[oracle] - acc
        rows.append({"rule": rule, "pick": lab, "pick_acc": acc, "oracle": oracle,
                     "oracle_acc": means[oracle], "regret": regret,
                     "within_1pt": None if regret is None else regret <= within + 1e-12,
                     "cost_s": (costs or {}).get(rule, 0.0)})
    return rows


def summarize(rows: list[dict]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["rule"], []).append(r)
    return {rule: {"mean_regret": float(np.mean([r["regret"] for r in rs])),
                   "within_1pt": float(np.mean([r["within_1pt"] for r in rs])),
                   "within_half_pt": float(np.mean([r["regret"] <= 0.005 + 1e-12
                                                    for r in rs])),
                   "mean_cost_s": float(np.mean([r["cost_s"] for r in rs])), "cases": len(rs)}
            for rule, rs in out.items() if all(r["regret"] is not None for r in rs)}


def _cases(sets: str, tier: str, split: str | None = None) -> list:
    from transferlab.cases import get_cases

    out = [c for name in sets.split(",") for c in get_cases(name, split=split)]
    return [c for c in out if c.tier == tier]


def cmd_measure(args) -> None:
    """Evidence and every candidate x seed of every case (dev and held-out alike)."""
    from transferlab.cases.measure import Store, measure_case

    store = Store(Path(args.store) / "store.jsonl")
    cases = _cases(args.cases, args.tier)[:args.limit]
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        measure_case(store, case, list(range(args.seeds)), Path(args.store) / "sources",
                     args.data_dir, progress=print if args.verbose else None)
        print(f"[{i + 1}/{len(cases)}] {case.name} ({case.split}) measured in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


def _evidence(d: dict):
    from transferlab.advise.evidence import DepthEvidence, Evidence

    return Evidence(**{**d, "per_depth": [DepthEvidence(**r) for r in d["per_depth"]]})


def _means(trials: dict, key: str) -> dict[str, float]:
    return {lab: float(np.mean([r[key] for r in rs])) for lab, rs in trials.items()
            if rs and all(r.get(key) is not None for r in rs)}


def dev_cases(store, cases) -> list:
    """``DevCase``s of the measured development cases: validation regret per family."""
    from transferlab.advise.casebase import DevCase, features
    from transferlab.advise.rules import FAMILIES, candidate_set, resolve

    out = []
    for case in cases:
        rec = store.get("evidence", case.name)
        if case.split != "dev" or rec is None:
            continue
        ev, val = rec["evidence"], _means(store.trials(case.name), "val_acc")
        L, bd = ev["top_depth"], ev["best_depth"]
        cands = candidate_set(L, bd, 1, 0.05)
        labels = {f: resolve(f, cands, bd, L) for f in FAMILIES}
        if any(c is None or c.label not in val for c in labels.values()):
            continue  # not every family measured yet
        best = max(val.values())
        out.append(DevCase(case.name, features(ev),
                           {f: float(best - val[c.label]) for f, c in labels.items()}))
    return out


def cmd_fit(args) -> None:
    """Fit the case base on the development cases (validation only) and package it."""
    from transferlab.advise.casebase import PACKAGED, CaseBase
    from transferlab.cases.measure import Store

    store = Store(Path(args.store) / "store.jsonl")
    devs = dev_cases(store, _cases(args.cases, args.tier))
    cb = CaseBase().fit(devs)
    out = {**cb.to_dict(), "fitted_on": args.cases, "tier": args.tier,
           "provenance": provenance()}
    Path(args.out or PACKAGED).write_text(json.dumps(out, indent=1, default=str))
    print(f"case base: {len(devs)} development cases, n_neighbors {cb.n_neighbors_}, "
          f"leave-one-out validation regret {cb.loo_}")


def cmd_verify(args) -> None:
    """``advise --verify`` (with ``--case-base``, default the packaged one) on every
    held-out case."""
    import transferlab as tl
    from transferlab.cases.measure import Store, cpu_seconds, source_model
    from transferlab.errors import UserError

    store = Store(Path(args.store) / "store.jsonl")
    for case in _cases(args.cases, args.tier, "heldout")[:args.limit]:
        if store.get("verify", case.name) is not None:
            continue
        _, ckpt = source_model(case, Path(args.store) / "sources", args.data_dir)
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            # workers=1: the race's trials run in this process, so its CPU seconds count
            # them (a reused worker pool's children are never reaped here); out=None: the
            # decision's cost, not its report's (figures and HTML, about 1.5 s)
            adv = tl.advise(str(ckpt), case.target_task, verify=True, seeds=1,
                            progress=False, out=None, data_dir=args.data_dir, workers=1,
                            cases=args.case_base or True)
            got = {"advised": adv.recommendation.label, "winner": adv.race["winner"],
                   "race": adv.race}
        except UserError as exc:  # a refusal is the rule's answer: recorded as such
            got = {"advised": None, "winner": None, "refused": str(exc).splitlines()[0]}
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        store.put({"kind": "verify", "case": case.name, "wall_s": wall, "cpu_s": cpu, **got})
        print(f"{case.name}: advised {got['advised']}, race winner {got['winner']} "
              f"({wall:.0f} s)", flush=True)


def cmd_depth(args) -> None:
    """The exhaustive freeze:n sweep (every n, every seed) and ``best_depth``'s pick."""
    from transferlab.cases.measure import (Store, cpu_seconds, measure_trial, source_model,
                                           train_config)
    from transferlab.data import make_task
    from transferlab.errors import UserError
    from transferlab.search import best_depth

    store = Store(Path(args.store) / "store.jsonl")
    for case in _cases(args.cases, args.tier, "heldout")[:args.limit]:
        model, _ = source_model(case, Path(args.store) / "sources", args.data_dir)
        task = make_task(case.target_task, data_dir=args.data_dir)
        train = train_config(task)
        for n in range(model.num_blocks + 1):
            for s in range(args.seeds):
                measure_trial(store, case, model, task, f"freeze:{n}", s, train)
        if store.get("depth", case.name) is None:
            t0, c0 = time.perf_counter(), cpu_seconds()
            try:
                pick, why = best_depth(model, task, seeds=(0,), train=train).protocol, None
            except UserError as exc:  # e.g. a validation split too small to tell depths
                pick, why = None, str(exc).splitlines()[0]
            store.put({"kind": "depth", "case": case.name, "pick": pick, "refused": why,
                       "wall_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0})
        got = store.get("depth", case.name)
        print(f"{case.name}: depth pick {got['pick'] or 'refused: ' + got['refused']}",
              flush=True)


def case_rows(store, case, cb) -> dict | None:
    """One held-out case scored: every rule's pick, regret, within 1 point, cost."""
    from transferlab.advise.budgets import get_budget
    from transferlab.advise.core import recommend
    from transferlab.advise.rules import Thresholds
    from transferlab.cases import CONSTANT_RULES
    from transferlab.cases.measure import candidate_labels, logme_label, resolve_label

    rec = store.get("evidence", case.name)
    trials = store.trials(case.name)
    if rec is None or not trials:
        return None
    ev, L = rec["evidence"], rec["evidence"]["top_depth"]
    test, wall = _means(trials, "test_acc"), _means(trials, COST)
    cands = candidate_labels(case, L, ev["best_depth"])
    if any(c not in test for c in cands):
        return None  # not fully measured yet
    alias = lambda lab: resolve_label(case, lab, L)  # noqa: E731 - as the store keys it
    picks = {rule: alias(lab) for rule, lab in CONSTANT_RULES.items()}
    q = get_budget("quick")
    v = store.get("verify", case.name)
    # advise refuses (one line, exit 2) when no probe beats chance's bound on this little
    # validation: the user gets no advice, so neither is scored (plain advise reads the
    # same evidence check as --verify, which recorded the refusal)
    advise_refused = v is not None and v["winner"] is None and \
        (v.get("refused") or "").startswith("advise:")
    evidence_rules = ["LogME's best depth"]
    if not advise_refused:
        picks["advise"] = recommend(_evidence(ev), L, q, Thresholds(), cb)[2][0].label
        picks["advise (guide table, no cases)"] = recommend(_evidence(ev), L, q,
                                                            Thresholds(), None)[2][0].label
        evidence_rules += ["advise", "advise (guide table, no cases)"]
    picks["LogME's best depth"] = alias(logme_label(ev))
    costs = {rule: wall.get(lab, float("nan")) for rule, lab in picks.items()}
    for rule in evidence_rules:
        costs[rule] += rec[COST]  # the evidence, then the pick's training
    if v is not None and v["winner"] is not None:
        picks["advise --verify"], costs["advise --verify"] = alias(v["winner"]), v[COST]
    d = store.get("depth", case.name)
    if d is not None and d["pick"] is None:
        refused = d["refused"]
        d = None
    else:
        refused = None
    if d is not None:
        picks["depth"], costs["depth"] = alias(d["pick"]), d[COST]
    scored = {lab: [r["test_acc"] for r in trials[lab]] for lab in
              dict.fromkeys([*cands, *picks.values()]) if lab in trials}
    rows = score_rules(scored, picks, costs)
    every = sum(wall[c] for c in cands)  # training every candidate once
    for r in rows:
        r["cost_ratio"] = r["cost_s"] / every
    out = {"case": case.name, "split": case.split, "family": case.family, "k": case.k,
           "task": case.target_task, "candidates": cands,
           "test_mean": {lab: float(np.mean(v)) for lab, v in scored.items()},
           "val_mean": _means(trials, "val_acc"), "wall_mean": wall,
           "all_candidates_s": every, "evidence_s": rec[COST], "rows": rows,
           "depth_refused": refused, "advise_refused": advise_refused}
    if d is not None:
        out["depth"] = depth_rows(case, trials, L, d, alias)
    return out


def depth_rows(case, trials, L: int, d: dict, alias) -> dict:
    """The depth judgment: freeze:n for every n (and the linear probe), the search's pick
    against always freeze:0 / always linear-probe, and its share of the exhaustive time."""
    labels = [alias(f"freeze:{n}") for n in range(L + 1)] + ["linear-probe"]
    scored = {lab: [r["test_acc"] for r in trials[lab]] for lab in labels if lab in trials}
    wall = _means({lab: trials[lab] for lab in labels if lab in trials}, COST)
    picks = {"depth": alias(d["pick"]), "always freeze:0": alias("freeze:0"),
             "always linear-probe": "linear-probe"}
    rows = score_rules(scored, picks, {"depth": d[COST]})
    means = {lab: float(np.mean(v)) for lab, v in scored.items()}
    oracle = rows[0]["oracle"]  # score_rules' oracle, the same for every row
    exhaustive = sum(wall[alias(f"freeze:{n}")] for n in range(L + 1))
    return {"oracle": oracle, "oracle_is_depth_0": oracle == alias("freeze:0"),
            "rows": rows, "exhaustive_s": exhaustive,
            "search_share": d[COST] / exhaustive, "test_mean": means}


def _summary(rows: list[dict]) -> dict:
    out = summarize(rows)
    for rule, srow in out.items():
        srow["mean_cost_ratio"] = float(np.mean([r["cost_ratio"] for r in rows
                                                 if r["rule"] == rule]))
    return out


def cmd_score(args) -> None:
    from transferlab.advise import casebase
    from transferlab.cases.measure import Store

    store = Store(Path(args.store) / "store.jsonl")
    cb = casebase.load(args.case_base)
    results = [r for c in _cases(args.cases, args.tier, "heldout")
               if (r := case_rows(store, c, cb)) is not None]
    rows = [r for res in results for r in res["rows"]]
    summary = _summary(rows)
    # every rule on the cases advise answered: the like-for-like comparison
    answered = [r for res in results if not res["advise_refused"] for r in res["rows"]]
    summary_answered = _summary(answered)
    deep = [res["depth"] for res in results if "depth" in res
            and not res["depth"]["oracle_is_depth_0"]]
    depth_summary = summarize([r for dd in deep for r in dd["rows"]]) if deep else {}
    if deep:
        depth_summary["search_share"] = float(np.mean([dd["search_share"] for dd in deep]))
    out = {"benchmark": "decisions", "cases": args.cases, "tier": args.tier,
           "seeds": args.seeds,
           "case_base": (args.case_base or casebase.PACKAGED.name) if cb else None,
           "n_heldout": len(results), "results": results, "summary": summary,
           "advise_refused": [res["case"] for res in results if res["advise_refused"]],
           "summary_where_advise_answered": summary_answered,
           "depth_where_it_matters": {"cases": len(deep), "summary": depth_summary},
           "provenance": provenance()}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    for rule, srow in summary.items():
        print(f"{rule:<34} regret {srow['mean_regret']:.4f}  within 1pt "
              f"{srow['within_1pt']:.2f}  cost {srow['mean_cost_ratio']:.2f}x "
              f"({srow['cases']} cases)")


def main(argv=None) -> None:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="evidence + every candidate x seed into the store")
    f = sub.add_parser("fit", help="fit the case base on the dev cases (validation only)")
    f.add_argument("--out", default=None, help="where (default: the packaged casebase.json)")
    v = sub.add_parser("verify", help="advise --verify on every held-out case")
    d = sub.add_parser("depth", help="exhaustive freeze:n sweep + best_depth, held-out")
    sc = sub.add_parser("score", help="the scoreboard of every rule on held-out cases")
    sc.add_argument("--out", default=None, help="JSON path of the scoreboard")
    for p in (v, sc):
        p.add_argument("--case-base", default=None,
                       help="the advisor's case base (default: the packaged one)")
    for p in (m, f, v, d, sc):
        p.add_argument("--cases", default="synthetic,convnet,effnet",
                       help="comma list of registered case sets")
        p.add_argument("--tier", default="quick", help="quick (CPU) or standard (GPU)")
        p.add_argument("--store", default="runs/decisions", help="store folder (resumable)")
        p.add_argument("--seeds", type=int, default=3, help="seeds per candidate (>= 3)")
        p.add_argument("--limit", type=int, default=None, help="first N cases only")
        p.add_argument("--data-dir", default=os.environ.get("TRANSFERLAB_DATA"))
        p.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.seeds < 3:
        ap.error("--seeds must be >= 3 (the oracle is a mean over >= 3 seeds)")
    {"measure": cmd_measure, "fit": cmd_fit, "verify": cmd_verify, "depth": cmd_depth,
     "score": cmd_score}[args.cmd](args)


if __name__ == "__main__":
    main()
