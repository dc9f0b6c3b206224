"""``transferlab depth``: find the best freeze depth without the exhaustive sweep."""

from __future__ import annotations

import argparse

from transferlab.cli._common import add_train_args, train_config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "depth", help="choose the freeze depth n of freeze:n by validation, cheaply",
        description="Probe every depth, train freeze:n at both ends (n = L, the "
                    "cheapest, and n = 0), walk inward from the better end while it pays "
                    "and the budget allows, then check the best two with every seed "
                    "(docs/depth.md). Chooses by validation "
                    "accuracy only; prints the chosen depth, its validation and test "
                    "accuracy, the compute spent and the evidence per depth.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", required=True, help="source checkpoint (from `pretrain`)")
    p.add_argument("--task", required=True,
                   help="target task string with a validation split, e.g. "
                        "mnist:classes=5-9:per_class=100")
    p.add_argument("--budget", default="quick",
                   help="quick (cap: 25%% of an exhaustive sweep's estimated compute), "
                        "standard (50%%, patience 2) or thorough (every depth, no cap)")
    p.add_argument("--seeds", type=int, default=1,
                   help="seeds 0..S-1 of the final check (the walk uses seed 0)")
    p.add_argument("--depths", default="all",
                   help="candidate depths: 'all' (0..L) or a comma list such as 0,2,4")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the datasets (unset: $TRANSFERLAB_DATA)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_train_args(p)
    p.set_defaults(func=run)


def _depths(text: str) -> list[int] | None:
    from transferlab.errors import bad_value

    if text.strip() == "all":
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise bad_value("--depths", text, "'all' or a comma list of integers such as 0,2,4",
                        "write --depths 0,2,4") from None


def run(args: argparse.Namespace) -> int:
    from transferlab.cli import print_json
    from transferlab.errors import bad_value
    from transferlab.search import best_depth, get_budget

    get_budget(args.budget)  # fail fast, before loading anything
    if args.seeds < 1:
        raise bad_value("--seeds", args.seeds, "an integer >= 1", "e.g. --seeds 3")
    from transferlab._memory import check_count

    check_count("--seeds", args.seeds, 1, "one final-check trial per seed and depth")
    depths = _depths(args.depths)
    res = best_depth(args.source, args.task, budget=args.budget,
                     seeds=tuple(range(args.seeds)), depths=depths,
                     train=train_config_from_args(args), progress=not args.quiet,
                     data_dir=args.data_dir)
    if args.json:
        print_json(res.to_dict())
        return 0
    for e in res.evidence:
        test = f"  test {e['test_acc']:.4f}" if "test_acc" in e else ""
        print(f"{e['stage']:>6} depth {e['depth']}: {e['measure']} = {e['value']:.4f} "
              f"({e['epochs']} epochs, seeds {e['seeds']}, {e['compute_s']:.2f} s){test}")
    for note in res.notes:
        print(f"note: {note}")
    print(f"chosen: {res.protocol}  val_acc {res.val_acc:.4f}  test_acc {res.test_acc:.4f}  "
          f"({res.wall_time_s:.1f} s; exhaustive sweep estimated "
          f"{res.estimated_exhaustive_s:.1f} s)")
    return 0
