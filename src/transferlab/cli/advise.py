"""``transferlab advise``: measure the scenario of a source checkpoint and a target task,
recommend a protocol with its settings and explain why; ``--verify`` races the top
candidates on the sweep engine."""

from __future__ import annotations

import argparse

from transferlab.cli._common import add_common, check_out_dir, seed_arg


def register(sub) -> None:
    p = sub.add_parser("advise", help="recommend how to transfer a source to a task",
                       description="Measure the scenario (labelled examples per class; "
                                   "similarity from linear probes and LogME per depth, LEEP), "
                                   "recommend a protocol with lr, lr_mult and epochs, a "
                                   "runner-up and the explanation; --verify runs a short "
                                   "successive-halving race of the top candidates "
                                   "(validation decides).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", required=True, help="source checkpoint (from `pretrain`)")
    p.add_argument("--task", required=True,
                   help="target task string, e.g. mnist:classes=5-9:per_class=10")
    p.add_argument("--verify", action="store_true",
                   help="race the top candidates (successive halving on the sweep engine)")
    p.add_argument("--budget", default="quick", help="quick (CPU) or standard")
    p.add_argument("--seeds", type=seed_arg, default=1,
                   help="race seeds 0..N-1 (the race ranks by their mean)")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel trials of the race (default: one per core)")
    p.add_argument("--out", default=None,
                   help="folder for advice.json, report.html and the race's database "
                        "(a rerun resumes the race)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transferlab.advise import advise, get_budget
    from transferlab.cli import print_json
    from transferlab.errors import bad_value

    get_budget(args.budget)  # fail fast, before loading anything
    if args.seeds < 1:
        raise bad_value("--seeds", args.seeds, "a count >= 1")
    from transferlab._memory import check_count

    check_count("--seeds", args.seeds, 1, "race trials per candidate and rung")
    if args.out:
        check_out_dir(args.out)
    adv = advise(args.source, args.task, verify=args.verify, budget=args.budget,
                 seeds=args.seeds, progress=not args.quiet, out=args.out,
                 data_dir=args.data_dir, workers=args.workers)
    if args.json:
        print_json(adv.to_dict())
        return 0
    rec = adv.recommendation
    failures = (adv.race or {}).get("trial_failures")
    if failures:  # some race trials failed: the count and causes first
        print(f"race: {failures}")
    print(f"{adv.task}: {adv.size} and {adv.similarity} -> {rec.label}"
          + (f" (runner-up {adv.runner_up.label})" if adv.runner_up else ""))
    print(adv.explanation)
    if adv.verified:
        for v in adv.verified:
            acc = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
            print(f"  {v['label']:<24} val_acc={acc(v['val_acc'])} "
                  f"test_acc={acc(v['test_acc'])} time={v['wall_time_s']:.1f}s"
                  + ("" if v["finalist"] else f" (out after rung {v['eliminated_at']})"))
    if adv.files:
        print(f"report: {adv.files['report']}")
    return 0
