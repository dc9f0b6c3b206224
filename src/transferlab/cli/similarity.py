"""``transferlab similarity``: block-by-block similarity of two checkpoints on one task."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path


def register(sub) -> None:
    from transferlab.similarity import METRICS
    from transferlab.similarity.blockwise import MINIBATCH

    p = sub.add_parser(
        "similarity", help="compare the blocks of two checkpoints (CKA, CCA, Procrustes)",
        description="Run both checkpoints on the same inputs of a task, flatten every block's "
                    "output, and compare every block of A with every block of B. Writes "
                    "similarity.json and similarity.png (an annotated heatmap) to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--a", required=True, help="checkpoint A (rows of the matrix)")
    p.add_argument("--b", required=True, help="checkpoint B (columns); may equal --a")
    p.add_argument("--task", required=True,
                   help="task whose inputs are fed to both models, e.g. digits:size=16")
    p.add_argument("--metric", default="linear_cka", choices=[*METRICS, MINIBATCH],
                   help=f"similarity metric; {MINIBATCH} streams batches with bounded memory")
    p.add_argument("--split", default="test", choices=["test", "val", "train"],
                   help="which split of the task supplies the inputs")
    p.add_argument("--n-samples", type=int, default=1000,
                   help="inputs to use (a seeded random subset when the split is larger)")
    p.add_argument("--batch-size", type=int, default=256,
                   help=f"forward-pass batch (also the CKA minibatch for {MINIBATCH})")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the datasets (unset: $TRANSFERLAB_DATA)")
    p.add_argument("--seed", type=int, default=0, help="seed of the input subset")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


MIN_SAMPLES = 10  # inputs a similarity needs before it says anything about the models


def _subset(n_total: int, n: int, seed: int):
    import torch

    if n >= n_total:
        return torch.arange(n_total)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=gen)[:n].sort().values


def run(args: argparse.Namespace) -> int:
    from transferlab._atomic import write_text_atomic
    from transferlab.checkpoint import checkpoint_paths, load_checkpoint
    from transferlab.cli import print_json
    from transferlab.data import make_task
    from transferlab.errors import bad_value
    from transferlab.provenance import provenance
    from transferlab.similarity.blockwise import block_similarity
    from transferlab.similarity.plot import plot_similarity
    from transferlab.cli._common import check_out_dir

    check_out_dir(args.out, inputs={"--a": args.a, "--b": args.b},  # before any work
                  writes=["similarity.json", "similarity.png"])
    if args.n_samples < MIN_SAMPLES:
        raise bad_value("--n-samples", args.n_samples, f"an integer >= {MIN_SAMPLES} (with "
                        "fewer inputs a centred Gram matrix has too few directions: with 2, "
                        "CKA is 1 for any two models)", "pass e.g. 1000")
    model_a, meta_a = load_checkpoint(args.a, device=args.device)
    same = checkpoint_paths(args.a)[0].resolve() == checkpoint_paths(args.b)[0].resolve()
    model_b, meta_b = (model_a, meta_a) if same else load_checkpoint(args.b, device=args.device)
    task = make_task(args.task, data_dir=args.data_dir, progress=not args.quiet)
    x_all = getattr(task, f"x_{args.split}")
    idx = _subset(len(x_all), args.n_samples, args.seed)
    if len(idx) < MIN_SAMPLES:
        raise bad_value("--split", args.split, f"a split of at least {MIN_SAMPLES} inputs "
                        f"(task {str(task.spec)!r} has {len(idx)} in {args.split})",
                        "pick a larger split or task")
    from transferlab.models.compat import check_runs_on

    for name, model in (("model_a", model_a), ("model_b", model_b)):  # before the progress bar
        check_runs_on(model, x_all[idx[:1]].to(args.device), name, str(task.spec))
    with warnings.catch_warnings():  # CCA on fewer samples than directions: an error here
        warnings.filterwarnings("error", message="CCA with n_samples", category=UserWarning)
        try:
            matrix = block_similarity(model_a, model_b, x_all[idx], metric=args.metric,
                                      batch_size=args.batch_size, device=args.device,
                                      progress=not args.quiet)
        except UserWarning as w:
            raise bad_value("--n-samples", len(idx), f"more inputs than the directions "
                            f"{args.metric} compares ({str(w).split(':')[0]})",
                            "pass a larger --n-samples, or --metric linear_cka") from None
    result = {
        "metric": args.metric,
        "a": {"checkpoint": str(args.a), "task": meta_a.get("task"),
              "blocks": list(model_a.block_names)},
        "b": {"checkpoint": str(args.b), "task": meta_b.get("task"),
              "blocks": list(model_b.block_names)},
        "inputs": {"task": str(task.spec), "split": args.split, "n_samples": len(idx),
                   "seed": args.seed, "batch_size": args.batch_size},
        "matrix": matrix.tolist(),
        "provenance": provenance(),
    }
    out = Path(args.out)
    json_path, png_path = out / "similarity.json", out / "similarity.png"
    write_text_atomic(json_path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    plot_similarity(matrix, model_a.block_names, model_b.block_names, args.metric, png_path,
                    label_a=f"A ({Path(args.a).name})", label_b=f"B ({Path(args.b).name})",
                    title=f"{args.metric} on {task.spec} ({args.split}, n={len(idx)})")
    if args.json:
        print_json({**result, "files": {"json": str(json_path), "png": str(png_path)}})
    else:
        import pandas as pd

        table = pd.DataFrame(matrix, index=model_a.block_names, columns=model_b.block_names)
        print(f"{args.metric}: rows = A ({args.a}), columns = B ({args.b}); "
              f"{len(idx)} inputs from {task.spec} ({args.split})")
        print(table.round(3).to_string())
        print(f"wrote {json_path} and {png_path}")
    return 0
