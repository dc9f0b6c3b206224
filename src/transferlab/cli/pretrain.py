"""``transferlab pretrain``: train a source model on a task and save a checkpoint."""

from __future__ import annotations

import argparse

from transferlab.cli._common import (add_common, add_train_args, check_out_checkpoint,
                                     parse_json_arg, report_diverged, summary_line,
                                     train_config_from_args)


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="train a source model and save it",
                       description="Train a built-in architecture from scratch on a task and "
                                   "save it as safetensors + JSON sidecar.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default="digits:size=16",
                   help="task string DATASET[:key=value]..., e.g. mnist:classes=0-4")
    p.add_argument("--arch", default="convnet",
                   help="convnet, resnet, mlp or efficientnet_lite0")
    p.add_argument("--arch-kwargs", default=None,
                   help='JSON of architecture options, e.g. \'{"width": 32}\'')
    p.add_argument("--out", required=True, help="checkpoint path (writes OUT.safetensors and "
                                                "OUT.json)")
    add_common(p)
    add_train_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from transferlab.api import checkpoint_meta, pretrain
    from transferlab.checkpoint import save_checkpoint
    from transferlab.cli import print_json
    from transferlab.data import make_task

    cfg = train_config_from_args(args)
    check_out_checkpoint(args.out)  # before any training
    arch_kwargs = parse_json_arg("--arch-kwargs", args.arch_kwargs)
    task = make_task(args.task, data_dir=args.data_dir, progress=not args.quiet)
    res = pretrain(task, arch=args.arch, train=cfg, seed=args.seed, progress=not args.quiet,
                   **arch_kwargs)
    if res.metrics["outcome"] != "ok":  # never saved, never a success
        return report_diverged("pretrain", res, args.json)
    path = save_checkpoint(args.out, res.model, checkpoint_meta(res))
    if args.json:
        print_json({"checkpoint": str(path), "metrics": res.metrics, "config": res.config})
    else:
        print(f"pretrained {args.arch} on {task.spec}: {summary_line(res.metrics)}")
        print(f"saved {path}")
    return 0
