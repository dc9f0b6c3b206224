"""``transferlab sweep``: run a grid of transfer trials into a resumable SQLite store.

Two forms:
    transferlab sweep SPEC.yaml --db runs/x.sqlite
    transferlab sweep --source CKPT --target TASK --protocols freeze,reinit,reinit+ \\
        --depths all --seeds 3 --epochs 5 --db runs/depth.sqlite
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path

from transferlab.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="run a grid of transfer trials (resumable, SQLite)",
        description="Run every trial of a sweep spec (or of the depth-sweep shortcut) that is "
                    "not yet in the database. Finished trials are kept when the sweep is "
                    "stopped; running the same command again resumes. See docs/sweeps.md.")
    p.add_argument("spec", nargs="?", help="YAML sweep spec (see examples/depth_sweep.yaml); "
                   "omit it to use --source/--target instead")
    p.add_argument("--db", help="SQLite results database (default: runs/<spec name>.sqlite); "
                   "its cache lives in <db>.cache/")
    p.add_argument("--backend", default="local", choices=["local", "ray"],
                   help="where trials run: local processes (default) or a Ray cluster")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel trials (default: one per CPU core, or --workers-per-gpu "
                        "x the GPUs; 1 runs in this process)")
    p.add_argument("--workers-per-gpu", type=int, default=None,
                   help="trials in flight on each GPU (default: $TRANSFERLAB_WORKERS_PER_GPU, "
                        "else from the GPU's free memory and the cores, at most 8; see "
                        "docs/sweeps.md); with Ray, each trial asks for 1/N of a GPU")
    p.add_argument("--address", default=None,
                   help="Ray cluster: 'auto' or HOST:PORT (only with --backend ray; default "
                        "starts a local Ray)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run trials that failed before again (default: keep their error)")
    p.add_argument("--cache-limit-gb", type=float, default=4.0,
                   help="size bound of the frozen-prefix feature cache in <db>.cache/features "
                        "(least recently used files go first; 0 disables the cache)")
    p.add_argument("--keep", default=None, metavar="KINDS",
                   help="keep trial outputs in <db>.artifacts/: 'weights', 'probs' (test-set "
                        "softmax) or 'weights,probs' (added to the spec's keep; stored trials "
                        "without them run again)")
    p.add_argument("--fuse", default="auto", choices=["auto", "on", "off"],
                   help="train trials that differ only by seed, lr, lr_mult or depth as one "
                        "fused model (transferlab.train.fused): auto = on CUDA only (on the "
                        "CPU it is not faster), on, off")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    g = p.add_argument_group("depth-sweep shortcut (instead of SPEC)")
    g.add_argument("--source", help="source checkpoint (.safetensors)")
    g.add_argument("--target", help="target task string, e.g. digits:classes=5-9:size=16")
    g.add_argument("--protocols", default="freeze,reinit,reinit+",
                   help="comma-separated protocols; those taking a depth are swept over "
                        "--depths (default: freeze,reinit,reinit+)")
    g.add_argument("--depths", default="all",
                   help="'all' (1..L-1) or comma-separated block counts (default: all)")
    g.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..N-1 (default 1)")
    g.add_argument("--epochs", type=int, default=None, help="training epochs per trial")
    g.add_argument("--lr", type=float, default=None, help="learning rate per trial")
    g.add_argument("--name", default="depth-sweep", help="sweep name (default depth-sweep)")
    p.set_defaults(func=run)


def shortcut_spec(args) -> dict:
    """The spec dict that the depth-sweep flags describe."""
    if not args.target:
        raise UserError("--target is missing: the depth-sweep shortcut needs --source and "
                        "--target (or pass a SPEC file)")
    depths: str | list[int] = args.depths.strip()
    if depths != "all":
        try:
            depths = [int(d) for d in args.depths.split(",") if d.strip()]
        except ValueError:
            raise UserError(f"--depths={args.depths!r} is invalid: allowed are 'all' or "
                            "comma-separated integers such as 1,3,5") from None
    train = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None}
    return {"name": args.name, "target": args.target,
            "sources": {"source": {"checkpoint": str(Path(args.source).resolve())}},
            "axes": {"protocol": [p.strip() for p in args.protocols.split(",") if p.strip()],
                     "depth": depths, "seed": args.seeds},
            "train": train}


def resume_command(args, db: str) -> str:
    """The exact command that resumes this sweep."""
    parts = ["transferlab", "sweep"]
    if args.spec:
        parts.append(args.spec)
    else:
        parts += ["--source", args.source, "--target", args.target, "--protocols",
                  args.protocols, "--depths", args.depths, "--seeds", str(args.seeds)]
        parts += [x for k in ("epochs", "lr") if getattr(args, k) is not None
                  for x in (f"--{k}", str(getattr(args, k)))]
        if args.name != "depth-sweep":
            parts += ["--name", args.name]
    parts += ["--db", db]
    if args.backend != "local":
        parts += ["--backend", args.backend]
    if args.address:
        parts += ["--address", args.address]
    if args.workers is not None:
        parts += ["--workers", str(args.workers)]
    if args.workers_per_gpu is not None:
        parts += ["--workers-per-gpu", str(args.workers_per_gpu)]
    if args.cache_limit_gb != 4.0:
        parts += ["--cache-limit-gb", str(args.cache_limit_gb)]
    if args.keep:
        parts += ["--keep", args.keep]
    if getattr(args, "fuse", "auto") != "auto":
        parts += ["--fuse", args.fuse]
    return shlex.join(parts)


def run(args) -> int:
    from transferlab.cli import print_json
    from transferlab.sweep import SweepInterrupted, run_sweep

    if args.spec and args.source:
        raise UserError("SPEC and --source were both given: allowed is one of them; pass a "
                        "spec file, or the --source/--target shortcut")
    if not args.spec and not args.source:
        raise UserError("no sweep given: pass a SPEC file (see examples/depth_sweep.yaml) or "
                        "--source CKPT --target TASK for a depth sweep")
    if args.spec:
        spec = args.spec
        db = args.db or str(Path("runs") / f"{Path(args.spec).stem}.sqlite")
    else:
        spec = shortcut_spec(args)
        db = args.db or str(Path("runs") / f"{args.name}.sqlite")
    from transferlab._paths import check_database

    check_database(db, "--db", {"--source": args.source, "SPEC": args.spec})
    if not math.isfinite(args.cache_limit_gb) or args.cache_limit_gb < 0:
        raise UserError(f"--cache-limit-gb={args.cache_limit_gb} is invalid: allowed is a finite "
                        "number >= 0 (0 disables the feature cache); e.g. --cache-limit-gb 4")
    t0 = time.perf_counter()
    try:
        df = run_sweep(spec, db, backend=args.backend, workers=args.workers,
                       address=args.address, retry_failed=args.retry_failed,
                       progress=not args.quiet, cache_limit_gb=args.cache_limit_gb,
                       keep=args.keep, workers_per_gpu=args.workers_per_gpu,
                       fuse={"auto": None, "on": True, "off": False}[args.fuse])
    except SweepInterrupted as exc:
        print(f"transferlab sweep: interrupted: {exc.finished} trials stored this run, "
              f"{exc.discarded} unfinished trials discarded, {exc.remaining} still to run.\n"
              f"Resume with:\n  {resume_command(args, db)}", file=sys.stderr)
        return 130
    from transferlab.sweep.failures import check_trials

    # every trial failed: TrialsFailed (exit 3) with the count and each kind of cause
    failures = check_trials(df, f"sweep {db}")
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    summary = {"db": db, "trials": len(df), "done": int(counts.get("done", 0)),
               "failed": int(counts.get("failed", 0)), "trial_failures": failures,
               "elapsed_s": round(time.perf_counter() - t0, 2)}
    if args.json:
        print_json(summary)
    else:
        if failures:  # the causes first, before the table's pointer
            print(failures)
        print(f"{summary['trials']} trials: {summary['done']} done, {summary['failed']} failed "
              f"({summary['elapsed_s']} s). Table: transferlab results {shlex.quote(db)}")
        if summary["failed"]:
            print("Failed trials keep their error; run again with --retry-failed to retry them.")
    return 0
