"""``transferlab transfer``: source checkpoint + target task + protocol -> model + metrics."""

from __future__ import annotations

import argparse

from transferlab.cli._common import (add_common, add_train_args, check_out_checkpoint,
                                     summary_line, train_config_from_args)


def _protocol_help() -> str:
    from transferlab.protocols import protocol_names

    return "protocols: " + "; ".join(f"{k}: {v}" for k, v in protocol_names().items())


def register(sub) -> None:
    p = sub.add_parser("transfer", help="transfer a source checkpoint to a target task",
                       description="Copy, freeze, re-initialise and train as the protocol says, "
                                   "then save the transferred model with its metrics.",
                       epilog=_protocol_help(),
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", required=True, help="source checkpoint (from `pretrain`)")
    p.add_argument("--task", required=True, help="target task string, e.g. mnist:classes=5-9")
    p.add_argument("--protocol", default="finetune",
                   help="protocol name, e.g. linear-probe, freeze:3, reinit+:2 (see below)")
    p.add_argument("--protocol-options", default=None, metavar="JSON",
                   help="the protocol's config fields as a JSON object, e.g. "
                        "'{\"alpha\": 0.1}' for l2sp or '{\"freeze_norm_stats\": true}'")
    p.add_argument("--out", default=None, help="save the transferred model here (optional)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the frozen prefix every step instead of caching its features")
    add_common(p)
    add_train_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transferlab.api import checkpoint_meta, transfer
    from transferlab.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
    from transferlab.cli import print_json
    from transferlab.cli._common import parse_json_arg, report_diverged
    from transferlab.data import make_task
    from transferlab.protocols import get_protocol
    from transferlab.protocols import check_model

    # fail fast, before loading data
    proto = get_protocol(args.protocol,
                         **parse_json_arg("--protocol-options", args.protocol_options))
    cfg = train_config_from_args(args)
    if args.out:
        check_out_checkpoint(args.out, protect=(args.source,))  # before any training
    source, meta = load_checkpoint(args.source)
    check_model(proto.config, source)  # a depth, block name or kind that doesn't fit: fail early
    task = make_task(args.task, data_dir=args.data_dir, progress=not args.quiet)
    res = transfer(source, task, proto, cfg, seed=args.seed, use_cache=not args.no_cache,
                   progress=not args.quiet)
    if res.metrics["outcome"] != "ok":  # never saved, never a success
        return report_diverged("transfer", res, args.json)
    out = None
    if args.out:
        out = save_checkpoint(args.out, res.model, checkpoint_meta(
            res, source={"path": str(args.source), "sha256": checkpoint_sha256(args.source),
                         "task": meta.get("task")}))
    if args.json:
        print_json({"checkpoint": str(out) if out else None, "metrics": res.metrics,
                    "config": res.config})
    else:
        print(f"{proto.name} {meta.get('task')} -> {task.spec}: {summary_line(res.metrics)}")
        if out:
            print(f"saved {out}")
    return 0
