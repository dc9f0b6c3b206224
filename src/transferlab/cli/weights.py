"""``transferlab weights``: how far each block's weights moved between two checkpoints."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "weights", help="compare the weights of two checkpoints block by block",
        description="Per block and parameter kind (conv/linear weight, bias, BatchNorm gamma, "
                    "beta, running mean and variance): relative change ||W - W0|| / ||W0||, "
                    "cosine similarity and mean shift. Prints a table; writes weights.json "
                    "and weights.png (bar plot) to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--before", required=True, help="checkpoint before training (W0)")
    p.add_argument("--after", required=True, help="checkpoint after training (W)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--level", default="kind", choices=["kind", "tensor"],
                   help="one row per (block, kind), or one row per tensor")
    p.add_argument("--skip-mismatched", action="store_true",
                   help="leave out tensors whose shapes differ (e.g. a new head)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="accepted for symmetry; no progress bar")
    p.set_defaults(func=run)


def _clean(value):
    """NaN/inf are not JSON: write null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(args: argparse.Namespace) -> int:
    from transferlab._atomic import write_text_atomic
    from transferlab.analysis.plot import plot_weight_changes
    from transferlab.analysis.weights import compare_weights, parameter_kinds
    from transferlab.checkpoint import load_checkpoint
    from transferlab.cli import print_json
    from transferlab.models import block_of_parameter
    from transferlab.provenance import provenance
    from transferlab.cli._common import check_out_dir

    check_out_dir(args.out, inputs={"--before": args.before, "--after": args.after},
                  writes=["weights.json", "weights.png"])  # before any work
    before, meta_b = load_checkpoint(args.before)
    after, meta_a = load_checkpoint(args.after)
    df = compare_weights(before.state_dict(), after.state_dict(),
                         block_of=block_of_parameter(after), kind_of=parameter_kinds(after),
                         level=args.level, skip_mismatched=args.skip_mismatched)
    rows = [{k: _clean(v) for k, v in r.items()} for r in df.to_dict("records")]
    result = {"before": {"checkpoint": str(args.before), "task": meta_b.get("task")},
              "after": {"checkpoint": str(args.after), "task": meta_a.get("task")},
              "level": args.level, "rows": rows, "skipped": df.attrs["skipped"],
              "provenance": provenance()}
    out = Path(args.out)
    json_path, png_path = out / "weights.json", out / "weights.png"
    write_text_atomic(json_path, json.dumps(result, indent=2, sort_keys=True) + "\n")
    by_kind = df if args.level == "kind" else compare_weights(
        before.state_dict(), after.state_dict(), block_of=block_of_parameter(after),
        kind_of=parameter_kinds(after), skip_mismatched=args.skip_mismatched)
    plot_weight_changes(by_kind, png_path,
                        title=f"{Path(args.before).name} -> {Path(args.after).name}")
    if args.json:
        print_json({**result, "files": {"json": str(json_path), "png": str(png_path)}})
    else:
        shown = df.drop(columns=["norm_before", "norm_after"])
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        if df.attrs["skipped"]:
            print(f"skipped (shapes differ): {', '.join(df.attrs['skipped'])}")
        print(f"wrote {json_path} and {png_path}")
    return 0
