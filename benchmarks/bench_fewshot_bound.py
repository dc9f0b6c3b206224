"""What batching episodes could gain on this machine: one plain training step on 50 images
(one 5-shot, 10-way episode) against one on 500 (ten episodes stacked), and one test pass.

A batched episode engine turns E small steps into one step on E times the data. If a step on
500 images already costs >= 10x a step on 50, the small step is compute-bound and batching
has nothing to remove (``bound_train_x`` = 10 t(50) / t(500) is the most it can gain on the
training steps); the test pass (10,000 KMNIST images through the episode's own weights)
cannot be shared between episodes whose weights differ.

    TRANSFERLAB_DATA=... python benchmarks/bench_fewshot_bound.py [--out benchmarks/results/fewshot_cpu_bound.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SOURCE, TARGET = "mnist:per_class=500:size=28", "kmnist:size=28"
PROTOCOLS = ("bn-only", "conv-only", "finetune")


def _step_ms(model, opt, x, y, n: int) -> float:
    """Best of 5 x (mean of 10) SGD steps on the first ``n`` images, after 3 warm-up steps."""
    def step():
        loss = F.cross_entropy(model(x[:n]), y[:n])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            step()
        times.append((time.perf_counter() - t0) / 10)
    return 1000 * min(times)


@torch.no_grad()
def _test_pass_s(model, x_test) -> float:
    """One eval-mode pass over the test split in batches of 500."""
    model.eval()
    t0 = time.perf_counter()
    for i in range(0, len(x_test), 500):
        model(x_test[i:i + 500])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/fewshot_cpu_bound.json")
    args = ap.parse_args(argv)

    from transferlab.api import pretrain
    from transferlab.data import make_task
    from transferlab.protocols import get_protocol
    from transferlab.provenance import provenance
    from transferlab.studies.fewshot.budgets import BUDGETS

    budget = BUDGETS["quick"]
    source = pretrain(make_task(SOURCE), "convnet", {"epochs": 3, "batch_size": 128},
                      seed=0, progress=False, **budget.arch_kwargs()).model.eval()
    tgt = make_task(f"{TARGET}:per_class=50:val_fraction=0")  # 500 images: ten episodes
    out = {}
    for proto in PROTOCOLS:
        model = copy.deepcopy(source)
        get_protocol(proto).config.plan(model, 10, torch.Generator().manual_seed(0))
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                              lr=0.01, momentum=0.9)
        model.train()
        res = {f"step_{n}_ms": _step_ms(model, opt, tgt.x_train, tgt.y_train, n)
               for n in (50, 500)}
        res["test_pass_s"] = _test_pass_s(model, tgt.x_test)
        res["bound_train_x"] = 10 * res["step_50_ms"] / res["step_500_ms"]
        out[proto] = res
        print(proto, {k: round(v, 3) for k, v in res.items()}, flush=True)
    result = {"benchmark": "fewshot_batching_bound", "source": SOURCE, "target": TARGET,
              "arch_kwargs": budget.arch_kwargs(), "optimizer": "SGD lr 0.01 momentum 0.9",
              "per_protocol": out, "threads": torch.get_num_threads(),
              "cpus": os.cpu_count(), "load_avg": list(os.getloadavg()),
              "provenance": provenance()}
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
