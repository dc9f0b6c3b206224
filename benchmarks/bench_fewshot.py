"""Few-shot episodes: the study's episode engine vs a plain per-episode PyTorch loop.

Side by side in one run, same source, same support sets, same settings (the few-shot
study's quick budget: 100 full-batch SGD steps, lr 0.1, momentum 0.9 Nesterov, cosine,
weight decay 5e-4 on matrices, lr_mult 0.1 for pretrained weights of conv-only / finetune):
  A. plain loop: for each protocol and episode, copy the source, apply the protocol's plan,
     train with torch.optim.SGD, forward through the whole network every step, then
     evaluate on the target's test split;
  B. engine (``studies.fewshot.engine.train_episodes``): every episode of a protocol at once
     (vmap over stacked parameters and BatchNorm buffers), the frozen prefix and the test
     split's prefix features computed once.
Convnet (width 16, fc 128) pretrained on MNIST, target KMNIST 10-way k = 5, 10 episodes
(digits 0-4 -> 5-9 when MNIST is not found). Goal: B >= 3x the episodes per second of A at
the same test accuracies (within 1e-3 per episode) on the CPU; >= 10x on a GPU.

``--device cuda``: both sides on the GPU (source, support sets and test split resident
there), in the same precision (float32; ``--bf16``: bf16 autocast for both), with a
synchronisation before every clock reading; default output
``benchmarks/results/fewshot_cuda.json``. The engine is ``train.fused.fit_fused`` (the
general fused trainer) through ``train_episodes``.

    python benchmarks/bench_fewshot.py [--episodes 10] [--device cpu|cuda] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from transferlab.api import pretrain
from transferlab.data import make_task
from transferlab.protocols import get_protocol, resolve_train
from transferlab.provenance import provenance
from transferlab.studies.fewshot.budgets import BUDGETS, protocol_train
from transferlab.studies.fewshot.engine import train_episodes
from transferlab.train import TrainConfig
from transferlab.train.loop import _schedule, build_optimizer, set_train_mode

PROTOCOLS = ("head-only", "bn-only", "conv-only", "finetune", "bn-only-frozen-stats",
             "conv-only-frozen-stats", "finetune-frozen-stats")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_episode(source, protocol: str, x, y, x_test, y_test, num_classes: int,
                  cfg: TrainConfig, seed: int = 0, bf16: bool = False) -> float:
    """One episode as a plain PyTorch loop on x's device; returns its test accuracy."""
    # The plan (the head's seeded draw) on a CPU copy, then the model to the data's device:
    # device-correct whatever the protocol's initialisers do with a CPU generator.
    model = copy.deepcopy(source).cpu()
    proto = get_protocol(protocol)
    plan = proto.config.plan(model, num_classes, torch.Generator().manual_seed(seed),
                             lr_mult=cfg.lr_mult)
    model.to(x.device)  # in place: the plan's parameter groups stay the model's parameters
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 and x.is_cuda \
        else contextlib.nullcontext()
    opt = build_optimizer(plan.groups, cfg)
    base = [g["lr"] for g in opt.param_groups]
    for step in range(cfg.epochs):
        set_train_mode(model, plan.frozen_modules)
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * _schedule(step, cfg.epochs, cfg.schedule)
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y_test), 500):
            with autocast:
                logits = model(x_test[i:i + 500])
            correct += int((logits.float().argmax(1) == y_test[i:i + 500]).sum())
    return correct / len(y_test)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="default: the quick budget's")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS),
                    help="comma list (SGD protocols the engine runs)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast on CUDA for both sides (default: float32 for both)")
    ap.add_argument("--source-epochs", type=int, default=3,
                    help="pretraining epochs of the source (1 for a quick check)")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/fewshot.json, "
                    "fewshot_cuda.json with --device cuda")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: no CUDA device on this machine")
    out = args.out or ("benchmarks/results/fewshot_cuda.json" if device.type == "cuda"
                       else "benchmarks/results/fewshot.json")
    budget = BUDGETS["quick"]
    try:
        make_task("mnist:classes=0,1:per_class=1:size=28")
        make_task("kmnist:classes=0,1:per_class=1:size=28")
        src_task, tgt, size = "mnist:per_class=500:size=28", "kmnist:size=28", 28
    except ValueError:
        src_task, tgt, size = "digits:classes=0-4:size=16", "digits:classes=5-9:size=16", 16
    # The source is pretrained on the CPU (not timed), so that the benchmark does not
    # depend on the training loop's device path; then it moves to the benchmark's device.
    source = pretrain(make_task(src_task), "convnet",
                      {"epochs": args.source_epochs, "batch_size": 128, "device": "cpu"},
                      seed=0, progress=False, **budget.arch_kwargs()).model.eval()
    source = source.to(device)
    tasks = [make_task(f"{tgt}:per_class={args.shots}:val_fraction=0:episode={e}")
             for e in range(args.episodes)]
    x = torch.stack([t.x_train for t in tasks]).to(device)
    y = torch.stack([t.y_train for t in tasks]).to(device)
    x_test, y_test = tasks[0].x_test.to(device), tasks[0].y_test.to(device)
    c = tasks[0].num_classes
    print(f"source {src_task}, target {tgt}: {c} ways, k = {args.shots}, {args.episodes} "
          f"episodes, {len(y_test)} test images; device {device}, "
          f"{'bf16' if args.bf16 and device.type == 'cuda' else 'float32'}; "
          f"threads {torch.get_num_threads()}", flush=True)
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # warm-up import
    rows, t_plain, t_engine = [], 0.0, 0.0
    cache: dict = {}
    protocols = [p for p in args.protocols.split(",") if p]
    for p in protocols:
        train = {**protocol_train(budget, p), "device": args.device, "channels_last": False,
                 "bf16": args.bf16}
        if args.steps:
            train["epochs"] = args.steps
        cfg = resolve_train(get_protocol(p).config, TrainConfig.from_dict(train))
        # Untimed warm-up of both sides (one step; first calls, kernel selection).
        warm = dataclasses.replace(cfg, epochs=1)
        plain_episode(source, p, x[0], y[0], x_test[:50], y_test[:50], c, warm, bf16=args.bf16)
        train_episodes(source, p, x[:2], y[:2], x_test[:50], y_test[:50], c, warm)
        _sync(device)
        t0 = time.perf_counter()
        plain = [plain_episode(source, p, x[e], y[e], x_test, y_test, c, cfg, bf16=args.bf16)
                 for e in range(args.episodes)]
        _sync(device)
        t1 = time.perf_counter()
        res = train_episodes(source, p, x, y, x_test, y_test, c, cfg, prefix_cache=cache)
        _sync(device)
        t2 = time.perf_counter()
        t_plain += t1 - t0
        t_engine += t2 - t1
        diff = max(abs(a - b) for a, b in zip(plain, res.test_acc))
        rows.append({"protocol": p, "plain_s": t1 - t0, "engine_s": t2 - t1,
                     "ratio": (t1 - t0) / (t2 - t1),
                     "plain_mean_acc": sum(plain) / len(plain),
                     "engine_mean_acc": sum(res.test_acc) / len(res.test_acc),
                     "max_abs_acc_diff": diff, "plain_acc": plain, "engine_acc": res.test_acc})
        print(f"{p:24s} plain {t1 - t0:6.2f} s  engine {t2 - t1:6.2f} s  "
              f"{(t1 - t0) / (t2 - t1):5.2f}x  acc {rows[-1]['plain_mean_acc']:.4f} vs "
              f"{rows[-1]['engine_mean_acc']:.4f} (max |diff| {diff:.1e})", flush=True)
    n = args.episodes * len(protocols)
    result = {"benchmark": "fewshot_episode_engine_vs_plain_loop", "source": src_task,
              "target": tgt, "shots": args.shots, "episodes": args.episodes,
              "protocols": protocols, "steps": args.steps or budget.epochs,
              "arch_kwargs": budget.arch_kwargs(), "plain_s": t_plain, "engine_s": t_engine,
              "plain_episodes_per_s": n / t_plain, "engine_episodes_per_s": n / t_engine,
              "speedup": t_plain / t_engine,
              "max_abs_acc_diff": max(r["max_abs_acc_diff"] for r in rows),
              "per_protocol": rows, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "device": str(device), "precision": "bf16" if args.bf16 and device.type == "cuda"
              else "float32", "source_epochs": args.source_epochs,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "load_avg_at_end": os.getloadavg(), "provenance": provenance()}
    goal = 10 if device.type == "cuda" else 3
    result["goal_speedup"] = goal
    print(f"episodes/s: plain {n / t_plain:.2f}, engine {n / t_engine:.2f}: speed-up "
          f"{t_plain / t_engine:.2f}x (goal >= {goal}x); max |acc diff| "
          f"{result['max_abs_acc_diff']:.1e}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
