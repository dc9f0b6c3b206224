"""What batching episodes could gain on this machine: one plain training step on 50 images
(one 5-shot, 10-way episode) against one on 500 (ten episodes stacked), and one test pass.

A batched episode engine turns E small steps into one step on E times the data. If a step on
500 images already costs >= 10x a step on 50, the small step is compute-bound and batching
has nothing to remove (``bound_train_x`` = 10 t(50) / t(500) is the most it can gain on the
training steps); the test pass (10,000 KMNIST images through the episode's own weights)
cannot be shared between episodes whose weights differ.

    TRANSFERLAB_DATA=... python benchmarks/bench_fewshot_bound.py [--out benchmarks/results/fewshot_cpu_bound.json]
"""
import argparse
import os
from pathlib import Path

from transferlab.provenance import provenance
import copy, time, json, torch, torch.nn.functional as F
from transferlab.api import pretrain
from transferlab.data import make_task
from transferlab.protocols import get_protocol
from transferlab.studies.fewshot.budgets import BUDGETS
budget = BUDGETS["quick"]
source = pretrain(make_task("mnist:per_class=500:size=28"), "convnet", {"epochs": 3, "batch_size": 128},
                  seed=0, progress=False, **budget.arch_kwargs()).model.eval()
tgt = make_task("kmnist:size=28:per_class=50:val_fraction=0")
x_all, y_all = tgt.x_train, tgt.y_train  # 500 images
x_test = tgt.x_test
out = {}
for proto in ("bn-only", "conv-only", "finetune"):
    model = copy.deepcopy(source)
    plan = get_protocol(proto).config.plan(model, 10, torch.Generator().manual_seed(0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    model.train()
    def step(n):
        loss = F.cross_entropy(model(x_all[:n]), y_all[:n]); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    res = {}
    for n in (50, 500):
        for _ in range(3): step(n)
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(10): step(n)
            ts.append((time.perf_counter() - t0) / 10)
        res[f"step_{n}_ms"] = 1000 * min(ts)
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        for i in range(0, len(x_test), 500): model(x_test[i:i + 500])
        res["test_pass_s"] = time.perf_counter() - t0
    res["bound_train_x"] = 10 * res["step_50_ms"] / res["step_500_ms"]
    out[proto] = res
    print(proto, {k: round(v, 3) for k, v in res.items()}, flush=True)
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default="benchmarks/results/fewshot_cpu_bound.json")
args = ap.parse_args()
result = {"benchmark": "fewshot_batching_bound", "source": "mnist:per_class=500:size=28",
          "target": "kmnist:size=28", "arch_kwargs": budget.arch_kwargs(),
          "optimizer": "SGD lr 0.01 momentum 0.9", "per_protocol": out,
          "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
          "load_avg": list(os.getloadavg()), "provenance": provenance()}
Path(args.out).write_text(json.dumps(result, indent=2, default=str))
print(json.dumps(out))
