"""Scoreboard of decision rules on the case library's held-out cases (``transferlab.cases``).

Per held-out case: every candidate of the case (and every rule's pick) is trained over the
same fixed seeds; the *oracle* is the candidate of best mean TEST accuracy, used for
scoring only. Each decision rule picks without reading the test split:

* ``advise`` (``tl.advise``, no race), ``advise --verify`` (the race, by validation;
  ``--verify``), ``depth`` (``search.best_depth`` -> freeze:n), ``LogME's best depth``
  (freeze:d at the depth of highest LogME on the train split);
* the constant rules (``cases.CONSTANT_RULES``): always linear-probe, always finetune at
  lr_mult 0.1 / 1, always scratch, always freeze at half depth, always freeze:0.

Per (case, rule): the pick, its mean test accuracy, regret (oracle - pick), within 1 point,
and cost (the rule's own wall time in seconds: machine-load dependent, so results of this
script are not committed from a shared machine). Summary per rule: mean regret, share
within 1 point, mean cost.

    python benchmarks/bench_decisions.py --cases digits --seeds 3 [--limit 1] [--verify]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from transferlab.provenance import provenance

HERE = Path(__file__).parent
TRAIN = {"epochs": 10, "batch_size": 64, "lr": 0.05, "device": "cpu"}


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
                   "mean_cost_s": float(np.mean([r["cost_s"] for r in rs])), "cases": len(rs)}
            for rule, rs in out.items() if all(r["regret"] is not None for r in rs)}


def _label(protocol: str, lr_mult: float | None = None) -> str:
    return f"finetune (lr_mult {lr_mult:g})" if protocol == "finetune" else protocol


def run_case(case, seeds: list[int], verify: bool, workdir: Path) -> dict:
    import transferlab as tl
    from transferlab.api import pretrain, transfer
    from transferlab.cases import CONSTANT_RULES
    from transferlab.checkpoint import save_checkpoint
    from transferlab.data import make_task
    from transferlab.search import best_depth
    from transferlab.transferability.score import score_all

    src = pretrain(make_task(case.source_task), case.arch,
                   {**TRAIN, "epochs": case.pretrain_epochs}, seed=0, progress=False,
                   **dict(case.arch_kwargs)).model
    ckpt = workdir / case.name
    save_checkpoint(str(ckpt), src, {"source_task": case.source_task})
    task = make_task(case.target_task)
    from transferlab.advise.budgets import epochs_for

    # SGD candidates train at least 100 optimiser steps, as the advisor's candidates do
    train_k = {**TRAIN, "epochs": epochs_for(len(task.y_train), TRAIN["epochs"], 100,
                                             TRAIN["batch_size"])}
    L = src.num_blocks
    picks, costs = {}, {}
    for rule, lab in CONSTANT_RULES.items():
        picks[rule] = case.protocol_of(lab, L)[0] if lab == "freeze:half" else lab
    t0 = time.perf_counter()
    adv = tl.advise(str(ckpt) + ".safetensors", case.target_task, verify=False, progress=False)
    costs["advise"], picks["advise"] = time.perf_counter() - t0, adv.recommendation.label
    if verify:
        t0 = time.perf_counter()
        v = tl.advise(str(ckpt) + ".safetensors", case.target_task, verify=True,
                      progress=False, out=str(workdir / f"{case.name}-advise"))
        costs["advise --verify"] = time.perf_counter() - t0
        picks["advise --verify"] = v.race["winner"]
    t0 = time.perf_counter()
    res = best_depth(src, task, seeds=(seeds[0],), train=train_k)
    costs["depth"], picks["depth"] = time.perf_counter() - t0, res.protocol
    t0 = time.perf_counter()
    lm = score_all(src, task, ["logme"], list(range(1, L + 1)))
    d = max(lm, key=lambda r: (r["score"], r["depth"]))["depth"]
    costs["LogME's best depth"] = time.perf_counter() - t0
    picks["LogME's best depth"] = f"freeze:{d}" if d < L else "linear-probe"
    labels = list(dict.fromkeys([case.protocol_of(c, L)[0] if c == "freeze:half" else c
                                 for c in case.candidates] + list(picks.values())))
    measured = {}
    for lab in labels:
        proto, lr_mult = case.protocol_of(lab, L)
        train = {**train_k, **({"lr_mult": lr_mult} if lr_mult is not None else {})}
        measured[lab] = [transfer(src, task, proto, train, seed=s, progress=False)
                         .metrics["test_acc"] for s in seeds]
    return {"case": case.name, "split": case.split, "task": case.target_task,
            "train": train_k, "measured": measured, "picks": picks,
            "rows": score_rules(measured, picks, costs)}


def main(argv=None) -> dict:
    from transferlab.cases import get_cases

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="digits", help="registered case set")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per candidate (>= 3)")
    ap.add_argument("--limit", type=int, default=None, help="first N held-out cases only")
    ap.add_argument("--verify", action="store_true", help="also score advise --verify")
    ap.add_argument("--out", default=None, help="JSON path (default: print only)")
    args = ap.parse_args(argv)
    if args.seeds < 3:
        ap.error("--seeds must be >= 3 (the oracle is a mean over >= 3 seeds)")
    cases = get_cases(args.cases, split="heldout")[:args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_case(c, list(range(args.seeds)), args.verify, Path(tmp)) for c in cases]
    rows = [r for res in results for r in res["rows"]]
    out = {"benchmark": "decisions", "cases": args.cases, "seeds": args.seeds,
           "results": results, "summary": summarize(rows), "provenance": provenance()}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    r = main()
    for rule, s in r["summary"].items():
        print(f"{rule:<30} regret {s['mean_regret']:.4f}  within 1pt {s['within_1pt']:.2f}  "
              f"cost {s['mean_cost_s']:.1f} s  ({s['cases']} cases)")
