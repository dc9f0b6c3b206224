"""``transferlab ensemble``: transfer an ensemble by strategy; ``ensemble add`` / ``predict``.

``transferlab ensemble --pretrain TASK --members M --task TARGET --strategies a,b`` runs
each strategy (metrics and times per strategy); ``ensemble add`` adds a source member to a
saved shift ensemble; ``ensemble predict`` scores a saved ensemble.
"""

from __future__ import annotations

import argparse

from transferlab.cli._common import add_common, add_train_args, check_out_dir


def _help() -> str:
    from transferlab.ensemble import strategy_help

    return "strategies: " + strategy_help().replace("%", "%%")


def register(sub) -> None:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = sub.add_parser("ensemble", help="transfer an ensemble (independent, shift, ...)",
                       description="Transfer M source members to a target task with each "
                                   "strategy, on the sweep engine (resumable with --db); print "
                                   "ensemble accuracy, NLL, ECE, Brier, disagreement and time "
                                   "per strategy. Subcommands: add, predict.",
                       epilog=_help(), formatter_class=fmt)
    p.add_argument("--task", default=None, help="target task string, e.g. "
                                                "mnist:classes=5-9:per_class=50 (required)")
    p.add_argument("--members", nargs="+", default=None, metavar="CKPT|M",
                   help="source checkpoints (one architecture), or with --pretrain the "
                        "number of members M")
    p.add_argument("--pretrain", default=None, metavar="TASK",
                   help="pretrain the members on this task (seeds 0..M-1) instead")
    p.add_argument("--arch", default="convnet", help="architecture pretrained by --pretrain")
    p.add_argument("--pretrain-epochs", type=int, default=10, help="epochs of --pretrain")
    p.add_argument("--pretrain-lr", type=float, default=0.05, help="learning rate of --pretrain")
    p.add_argument("--strategies", default="independent,shift",
                   help="comma-separated strategies, each 'name[:field=value]...', e.g. "
                        "independent,shift:alpha=0.5,tiny (see below)")
    p.add_argument("--db", default=None, help="sweep store (default: OUT/ensemble.sqlite with "
                                              "--out, else a temporary one)")
    p.add_argument("--out", default=None, help="folder to save members + manifest.json in")
    p.add_argument("--workers", type=int, default=None, help="trials in parallel")
    p.add_argument("--fuse", default="auto", choices=["auto", "on", "off"],
                   help="fine-tune a stage's members as one fused model "
                        "(transferlab.train.fused): auto = on CUDA only, on, off")
    add_common(p)
    add_train_args(p)
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    a = actions.add_parser("add", help="add a source member to a saved shift ensemble",
                           description="Shift a new source member by the saved shift vector, "
                                       "tiny fine-tune it, add it, and time it against "
                                       "fine-tuning it fully.", formatter_class=fmt)
    a.add_argument("--ensemble", required=True, help="folder written by `ensemble --out`")
    a.add_argument("--source", required=True, help="the new member's source checkpoint")
    a.add_argument("--strategy", default=None, help="which saved strategy (default: the "
                                                    "first shift strategy)")
    a.add_argument("--no-compare", action="store_true",
                   help="skip the full fine-tune that the add time is compared with")
    a.add_argument("--json", action="store_true", help="print a machine-readable result")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=run_add)
    r = actions.add_parser("predict", help="score a saved ensemble on a task",
                           description="Ensemble metrics of saved strategies on a task's test "
                                       "split (default: the ensemble's target).",
                           formatter_class=fmt)
    r.add_argument("--ensemble", required=True, help="folder written by `ensemble --out`")
    r.add_argument("--strategy", default=None, help="one saved strategy (default: all)")
    r.add_argument("--task", default=None, help="task to score on (same classes)")
    r.add_argument("--data-dir", default=None, help="folder holding the datasets")
    r.add_argument("--save-probs", default=None, metavar="NPZ",
                   help="write each strategy's member probabilities (M, N, C) and labels")
    r.add_argument("--json", action="store_true", help="print a machine-readable result")
    r.set_defaults(func=run_predict)


def _table(rows: list[dict]) -> str:
    cols = ["accuracy", "nll", "ece", "brier", "disagreement", "member_accuracy",
            "wall_time_s", "epochs"]
    width = max(len("strategy"), *(len(r["strategy"]) for r in rows))
    lines = ["strategy".ljust(width) + "".join(c.rjust(16) for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(("-" if v is None else f"{v:.4f}" if isinstance(v, float)
                          else str(v)).rjust(16))
        lines.append(r["strategy"].ljust(width) + "".join(cells))
    return "\n".join(lines)


def _members(args) -> tuple[list[str] | None, int | None]:
    from transferlab.errors import UserError, bad_value

    if not args.members:
        raise UserError("--members is missing: allowed are source checkpoints, or with "
                        "--pretrain TASK the member count M; e.g. --pretrain "
                        "mnist:classes=0-4 --members 5")
    if args.pretrain:
        if len(args.members) != 1 or not args.members[0].isdigit():
            raise bad_value("--members", " ".join(args.members), "one integer M >= 1 with "
                            "--pretrain", "e.g. --members 5")
        from transferlab._memory import check_count

        check_count("--members", int(args.members[0]), 1, "one pretrained member each")
        return None, int(args.members[0])
    return list(args.members), None


def _check_numbers(args) -> None:
    """The ensemble's own numbers, named by their flags, before any folder exists."""
    import math

    from transferlab.errors import bad_value

    if not math.isfinite(args.pretrain_lr) or args.pretrain_lr <= 0:
        raise bad_value("--pretrain-lr", args.pretrain_lr, "a finite number > 0",
                        "e.g. --pretrain-lr 0.05")
    if args.pretrain_epochs < 0:
        raise bad_value("--pretrain-epochs", args.pretrain_epochs, "an integer >= 0 (0: "
                        "random members)", "e.g. --pretrain-epochs 10")
    if args.workers is not None and args.workers < 1:
        raise bad_value("--workers", args.workers, "an integer >= 1",
                        "leave it out for one worker per core")


def run(args: argparse.Namespace) -> int:
    from transferlab.cli import print_json
    from transferlab.ensemble import get_strategy, transfer_ensemble
    from transferlab.ensemble.run import finite_rows
    from transferlab.errors import UserError
    from transferlab.cli._common import train_config_from_args

    if args.task is None:
        raise UserError("--task is missing: allowed is a target task string, e.g. "
                        "--task mnist:classes=5-9:per_class=50")
    strategies = [s for s in args.strategies.split(",") if s.strip()]
    configs = [get_strategy(s) for s in strategies]  # bad names/options: before any work
    members, m = _members(args)
    _check_numbers(args)
    count = m if m is not None else len(members)
    for cfg in configs:
        cfg.check_members(count)
    if args.out:  # members are saved as OUT/<strategy>/member<i>: never over a source member
        from transferlab.ensemble.manifest import _folder

        check_out_dir(args.out, inputs={"--members": members},
                      writes=["manifest.json", "ensemble.sqlite"],
                      fills=[_folder(s) for s in strategies])
    if args.db:
        from transferlab._paths import check_database

        check_database(args.db, "--db", {"--members": members})
    train = train_config_from_args(args).to_dict()
    res = transfer_ensemble(args.task, members=members, strategies=strategies,
                            pretrain=args.pretrain, n_members=m, train=train, seed=args.seed,
                            db=args.db, workers=args.workers, data_dir=args.data_dir,
                            arch=args.arch, out=args.out, progress=not args.quiet,
                            fuse={"auto": None, "on": True, "off": False}[args.fuse],
                            pretrain_train={"epochs": args.pretrain_epochs,
                                            "lr": args.pretrain_lr})
    rows = finite_rows(res.rows)
    if args.json:
        print_json({"task": args.task, "members": res.members, "strategies": rows,
                    "out": args.out, "db": args.db})
    else:
        print(_table(rows))
        if args.out:
            print(f"saved {args.out}/manifest.json")
    return 0


def run_add(args: argparse.Namespace) -> int:
    from transferlab.cli import print_json
    from transferlab.ensemble import add_member
    from transferlab.ensemble.manifest import check_new_source

    check_new_source(args.ensemble, args.source, args.strategy)  # a duplicate: one line
    res = add_member(args.ensemble, args.source, args.strategy, compare=not args.no_compare,
                     progress=not args.quiet)
    if args.json:
        print_json(res)
    else:
        ratio = res.get("time_ratio")
        print(f"added member {res['member']} to {res['strategy']}: {res['add_time_s']:.2f}s"
              + (f" vs {res['full_time_s']:.2f}s fine-tuning it fully ({ratio:.3f}x)"
                 if ratio is not None else "")
              + f"; ensemble accuracy {res['before']['accuracy']:.4f} -> "
                f"{res['after']['accuracy']:.4f}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from transferlab.cli import print_json
    from transferlab.ensemble import predict

    target = None
    if args.save_probs:  # checked before scoring; np.savez adds .npz to any other name
        from transferlab._paths import check_output_file
        from transferlab.ensemble.manifest import input_files

        reads = {"--ensemble": input_files(args.ensemble)}
        check_output_file(args.save_probs, "--save-probs", reads)
        target = args.save_probs if args.save_probs.endswith(".npz") else \
            args.save_probs + ".npz"
        check_output_file(target, "--save-probs", reads)
    res = predict(args.ensemble, args.strategy, args.task, args.data_dir)
    if target:
        np.savez(target, **{f"{k}": v["probs"] for k, v in res.items()})
    rows = [{"strategy": k, **v["metrics"]} for k, v in res.items()]
    if args.json:
        print_json({"ensemble": args.ensemble, "strategies": rows})
    else:
        print(_table(rows))
    return 0
