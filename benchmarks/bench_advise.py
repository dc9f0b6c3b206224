"""``transferlab advise``: its time on an MNIST-sized task, and ``--verify``'s race against
running every candidate, side by side in one run.

  A. advise without --verify on MNIST 5-9 with every training example (26,463 train +
     2,941 val at 16x16; the evidence reads a stratified 300 per class): goal < 60 s;
  B. the race (successive halving of the top 4, validation decides) vs every candidate of
     the advisor's set at the full budget, same seeds, same sweep engine, one trial at a
     time (so trial times add up): goal race <= 20% of every candidate's trial time;
     also whether the race picked the best (on validation) of all candidates.

    TRANSFERLAB_DATA=/work/shared/datasets python benchmarks/bench_advise.py \
        [--target mnist:classes=5-9:per_class=100:size=16] [--seeds 1] \
        [--out benchmarks/results/advise.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SOURCE = "mnist:classes=0-4:per_class=1000:size=16"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="mnist:classes=5-9:per_class=100:size=16")
    ap.add_argument("--full-target", default="mnist:classes=5-9:size=16")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--work", default="runs/bench_advise")
    ap.add_argument("--out", default="benchmarks/results/advise.json")
    args = ap.parse_args()

    from transferlab.advise import advise, get_budget
    from transferlab.advise.core import recommend
    from transferlab.advise.rules import Thresholds
    from transferlab.advise.verify import _rung
    from transferlab.api import pretrain_checkpoint
    from transferlab.provenance import provenance

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "source"
    if not Path(str(src) + ".safetensors").exists():
        pretrain_checkpoint(SOURCE, str(src), arch_kwargs={"width": 8, "fc_width": 64},
                            train={"epochs": 10, "batch_size": 64})
    ckpt = str(src) + ".safetensors"
    result: dict = {"config": vars(args), "source_task": SOURCE, "provenance": provenance()}

    t0 = time.perf_counter()
    a = advise(ckpt, args.full_target, progress=False)
    result["advise_full"] = {"task": args.full_target, "wall_s": time.perf_counter() - t0,
                             "evidence_s": a.evidence.time_s, "size": a.size,
                             "similarity": a.similarity, "n_train": a.evidence.n_train,
                             "recommendation": a.recommendation.label,
                             "goal_60s_met": time.perf_counter() - t0 < 60}
    print("A", json.dumps(result["advise_full"]), flush=True)

    seeds = list(range(args.seeds))
    t0 = time.perf_counter()
    v = advise(ckpt, args.target, verify=True, seeds=seeds, progress=False, workers=1,
               out=work / "race")
    race_wall = time.perf_counter() - t0
    b = get_budget("quick")
    _, _, everyone, _ = recommend(v.evidence, 7, b, Thresholds())
    t0 = time.perf_counter()
    epochs = max(c.epochs for c in everyone if c.epochs)  # the candidates' full epochs
    full = _rung(everyone, epochs, b, args.target, ckpt, seeds, None,
                 work / "all.sqlite", 0, False, 1)
    all_wall = time.perf_counter() - t0
    all_time = sum(r["trial_time_s"] for r in full.values())
    best_val = max(full, key=lambda k: full[k]["val_acc"])
    result["race"] = {
        "task": args.target, "seeds": seeds, "race_trial_time_s": v.race["trial_time_s"],
        "race_wall_s": race_wall, "all_trial_time_s": all_time, "all_wall_s": all_wall,
        "ratio_trial_time": v.race["trial_time_s"] / all_time,
        "goal_20pct_met": v.race["trial_time_s"] / all_time <= 0.20,
        "race_winner": v.race["winner"], "advised": v.recommendation.label,
        "overturned": v.race["overturned"], "best_on_val_of_all": best_val,
        "race_found_best": v.race["winner"] == best_val,
        "all": {k: {kk: r[kk] for kk in ("val_acc", "test_acc", "trial_time_s")}
                for k, r in full.items()},
        "verified": [{k: x[k] for k in ("label", "val_acc", "test_acc", "wall_time_s",
                                         "eliminated_at")} for x in v.verified]}
    print("B", json.dumps({k: result["race"][k] for k in result["race"]
                           if k not in ("all", "verified")}), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
