"""``transferlab study yosinski``: reproduce "How transferable are features?" end to end."""

from __future__ import annotations

import argparse

STUDIES = ("yosinski",)


def register(sub) -> None:
    p = sub.add_parser(
        "study", help="run a packaged study (sweeps + figures + HTML report)",
        description="Run a packaged study end to end. 'yosinski' reproduces Yosinski et al. "
                    "(2014): halves A and B of the classes, base networks per seed, then "
                    "BnB, BnB+, AnB, AnB+ and random features for every depth n, with a "
                    "figure, curves.json and report.html in --out. Reruns resume.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("name", choices=STUDIES, help="which study")
    p.add_argument("--dataset", default="digits",
                   help="digits, mnist, cifar10, or an image folder / .zip / .npz path")
    p.add_argument("--split", default="random", choices=("random", "dissimilar"),
                   help="how classes are halved: random, or dissimilar (CIFAR-10: 6 animals "
                        "vs 4 vehicles; for other datasets give --classes-a/--classes-b)")
    p.add_argument("--classes-a", default=None,
                   help="explicit half A: indices, ranges or names, e.g. 0-4 or cat,dog")
    p.add_argument("--classes-b", default=None, help="explicit half B (with --classes-a)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the random class split")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--budget", default="quick",
                   help="quick (CPU: minutes), standard or full (GPU)")
    p.add_argument("--depths", default=None,
                   help="comma list of n to run (default 1..L-1); fewer give a partial study")
    p.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="where trials run")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel trials (default: one per core on CPU, one on a GPU)")
    p.add_argument("--address", default=None, help="Ray cluster address (--backend ray)")
    p.add_argument("--out", default=None,
                   help="output folder (default runs/yosinski-<dataset>-<split>)")
    p.add_argument("--compare", default=None,
                   help="curves.json of the other split, for the dissimilar-vs-random finding "
                        "(default: the sibling runs/yosinski-<dataset>-<other split> if any)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the datasets (unset: $TRANSFERLAB_DATA)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.set_defaults(func=run)


def _depths(text: str | None) -> list[int] | None:
    from transferlab.errors import bad_value

    if text is None:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise bad_value("--depths", text, "a comma list of integers such as 1,3,6") from None


def run(args: argparse.Namespace) -> int:
    from transferlab.cli import print_json
    from transferlab.studies import yosinski

    curves = yosinski.run(
        dataset=args.dataset, split=args.split, classes_a=args.classes_a,
        classes_b=args.classes_b, seeds=args.seeds, budget=args.budget, backend=args.backend,
        workers=args.workers, out=args.out, data_dir=args.data_dir, split_seed=args.split_seed,
        compare=args.compare, depths=_depths(args.depths), address=args.address,
        progress=not args.quiet)
    files, s = curves["files"], curves["settings"]
    if args.json:
        print_json({"files": files, "findings": curves["findings"],
                    "findings_rule": curves["findings_rule"], "baseB": curves["baseB"]["mean"],
                    "means": {k: v["mean"] for k, v in curves["conditions"].items()},
                    "wall_time_s": s["wall_time_s"], "trials": s["trials"],
                    "trials_failed": s["trials_failed"]})
        return 0
    print(f"yosinski study on {s['dataset_name']} ({s['split']} split): {s['trials']} trials "
          f"({s['trials_failed']} failed), {s['wall_time_s']:.0f} s")
    print(f"  A: {', '.join(curves['classes_a'])}\n  B: {', '.join(curves['classes_b'])}")
    print(curves["findings_rule"])
    for f in curves["findings"]:
        print(f"- {f['title']}: {f['text']}")
    print(f"report: {files['report']}")
    return 0
