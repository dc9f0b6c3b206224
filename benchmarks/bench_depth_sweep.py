"""Benchmark: an all-depth frozen sweep through transferlab vs a plain PyTorch loop.

For every depth n = 1..L, train a fresh head (and the unfrozen blocks n+1..L) on top of a
source whose first n blocks are frozen:

* transferlab: one ``run_sweep`` over ``freeze:n``, as a user runs it: one trial per core
  at a time (1 torch thread each; worker processes plus the driver's own slot), timed from
  the call, so starting the workers counts; the frozen prefix is evaluated once per depth,
  extended from the deepest shallower depth already in the feature cache, then only blocks
  n+1..L run per batch, in the channels_last layout.
* baseline: the usual loop, written out below: for each n, ``requires_grad=False`` and
  ``eval()`` on the first n blocks, then every batch of every epoch runs the full forward,
  with torch's default threads (every core), in the default layout.
* with ``--strong-baseline``, the same loop again with model and data in channels_last:
  how much of the speed-up is the layout rather than caching and scheduling.

On CUDA, transferlab's fastest GPU paths are timed side by side: the sweep with several
trials per GPU (``--workers-per-gpu``, default: the sweep's rule, sweep/backends/gpu.py),
and, when the fused engine (``transferlab.fused.transfer_fused``, branch fused) imports,
every depth trained as one fused job. The speed-up quoted is the plain loop's time over
the fastest transferlab path's. Both sides compute in the same precision: bf16 autocast on
CUDA by default (transferlab's default there; the plain loop under ``torch.autocast``),
float32 with ``--precision fp32`` and always on CPU.

Both use the same source checkpoint, data, optimiser (SGD, momentum, weight decay, cosine
schedule), epochs and batch size, on the same device, side by side in one run. Neither
side validates during training: the target task has ``val_fraction=0``, so both train on
the same examples, for the same steps, and score the same test split once. Data: MNIST
digits 0-4 -> 5-9 when MNIST is found under $TRANSFERLAB_DATA, else scikit-learn's digits
upsampled to 16x16.

    python benchmarks/bench_depth_sweep.py --out benchmarks/results/depth_sweep_cpu.json
    python benchmarks/bench_depth_sweep.py --workers 1 --threads 1   # one core each
    python benchmarks/bench_depth_sweep.py --device cuda --strong-baseline \
        --out benchmarks/results/depth_sweep_cuda.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from transferlab._atomic import write_text_atomic
from transferlab.api import pretrain_checkpoint
from transferlab.checkpoint import load_checkpoint
from transferlab.data import load_dataset, make_task
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.sweep import run_sweep


def pick_tasks(per_class: int, size: int | None = None) -> tuple[str, str, str]:
    """(source task, target task, data name): MNIST if available, else digits.

    The target has no validation split: neither side validates during training.
    """
    try:
        load_dataset("mnist")
        tail = (f":per_class={per_class}" if per_class else "") + (f":size={size}" if size else "")
        return (f"mnist:classes=0-4{tail}", f"mnist:classes=5-9{tail}:val_fraction=0",
                "mnist")
    except (UserError, OSError):
        return ("digits:classes=0-4:size=16", "digits:classes=5-9:size=16:val_fraction=0",
                "digits (16x16)")


def baseline_one_depth(ckpt: str, task, depth: int, epochs: int, batch_size: int,
                       lr: float, device: torch.device, seed: int = 0,
                       channels_last: bool = False, bf16: bool = False) -> dict:
    """The plain loop for ``freeze:depth``: full forward through every block, every batch."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    model, _ = load_checkpoint(ckpt)
    model.head = nn.Linear(model.head.in_features, task.num_classes)  # a fresh head
    model = model.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    for block in model.blocks[:depth]:
        block.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                           {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=0.9)
    x = task.x_train.to(device).contiguous(memory_format=fmt)
    y = task.y_train.to(device)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    t1 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for block in model.blocks[:depth]:
            block.eval()  # frozen blocks: BatchNorm statistics stay, dropout off
        order = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            with autocast(device, bf16):
                loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t1
    model.eval()
    with torch.no_grad():
        xt = task.x_test.to(device).contiguous(memory_format=fmt)
        yt = task.y_test.to(device)
        with autocast(device, bf16):
            pred = torch.cat([model(xt[i:i + 512]).argmax(1)
                              for i in range(0, len(xt), 512)])
    return {"depth": depth, "time_s": time.perf_counter() - t0, "train_s": train_s,
            "test_acc": (pred == yt).float().mean().item()}


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on CUDA when asked (what transferlab's TrainConfig.bf16 does)."""
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_baseline(ckpt: str, task, depths: list[int], args, device, channels_last: bool
                 ) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    rows = [baseline_one_depth(ckpt, task, n, args.epochs, args.batch_size, args.lr, device,
                               channels_last=channels_last, bf16=args.bf16) for n in depths]
    return time.perf_counter() - t0, rows


def run_fused(ckpt: str, task, depths: list[int], train: dict) -> tuple[float | None, list, str]:
    """Every depth as one fused job (the fused engine of branch fused), or (None, [], why)
    when the engine is not importable or refuses this sweep."""
    try:
        from transferlab.fused import FusedTrial, transfer_fused
    except ImportError as exc:
        return None, [], f"fused engine not importable ({exc})"
    model, _ = load_checkpoint(ckpt)
    trials = [FusedTrial(seed=0, protocol=f"freeze:{n}") for n in depths]
    if task.device.type != torch.device(train["device"]).type:
        task = task.to(train["device"])  # on the device before the clock starts, as a sweep's
    t0 = time.perf_counter()
    try:
        results = transfer_fused(model, task, f"freeze:{depths[0]}", trials, train,
                                 keep_probs=False)
    except (UserError, TypeError) as exc:  # a sweep it cannot fuse, or another signature
        return None, [], f"fused engine refused: {type(exc).__name__}: {exc}"
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    rows = [{"depth": n, "test_acc": r.metrics["test_acc"]} for n, r in zip(depths, results)]
    return total, rows, ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=1000,
                    help="training examples per class for MNIST (0: all; ignored for digits)")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per depth (default 10)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--width", type=int, default=16, help="convnet width (default 16)")
    ap.add_argument("--fc-width", type=int, default=128, help="convnet fc width (default 128)")
    ap.add_argument("--size", type=int, default=None,
                    help="resize MNIST to this side (default: native 28)")
    ap.add_argument("--source-epochs", type=int, default=3,
                    help="epochs to pretrain the source (setup, not timed)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--workers", type=int, default=None,
                    help="transferlab sweep workers (default: the sweep's own default, one "
                         "process per core on CPU, --workers-per-gpu x GPUs on CUDA)")
    ap.add_argument("--workers-per-gpu", type=int, default=None,
                    help="trials in flight per GPU in the sweep (default: the sweep's rule)")
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="both sides: bf16 autocast (CUDA only) or float32 (default auto: "
                         "bf16 on CUDA, transferlab's default there)")
    ap.add_argument("--no-fused", action="store_true",
                    help="do not time the fused engine even if it imports")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of the plain loop, and of the sweep when it runs "
                         "inline (--workers 1) (default: torch's choice, every core)")
    ap.add_argument("--strong-baseline", action="store_true",
                    help="also time the plain loop in channels_last (the layout transferlab "
                         "trains in), to separate the layout's share of the speed-up")
    ap.add_argument("--out", help="write the numbers and provenance as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                          if args.device == "auto" else args.device)
    args.bf16 = device.type == "cuda" and args.precision != "fp32"
    src_task, tgt_task, data_name = pick_tasks(args.per_class, args.size)
    work = Path(tempfile.mkdtemp(prefix="bench_depth_"))
    ckpt = str(work / "source")
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "device": str(device), "bf16": args.bf16}
    print(f"data: {data_name}; source {src_task} -> target {tgt_task}; device {device}")
    pretrain_checkpoint(src_task, ckpt, arch_kwargs={"width": args.width, "fc_width": args.fc_width},
                        train={**train, "epochs": args.source_epochs})
    model, _ = load_checkpoint(ckpt)
    depths = list(range(1, len(model.blocks) + 1))
    task = make_task(tgt_task)
    print(f"target: {len(task.y_train)} train / {len(task.y_test)} test examples; "
          f"depths {depths[0]}..{depths[-1]}; {args.epochs} epochs each; "
          f"{torch.get_num_threads()} torch threads in this process")

    resolved_per_gpu = None
    if device.type == "cuda":  # what the sweep will use, for the record
        from transferlab.sweep.backends.gpu import resolve_workers_per_gpu

        resolved_per_gpu = resolve_workers_per_gpu(args.workers_per_gpu)
        print(f"sweep: {resolved_per_gpu} trials per GPU")
    t0 = time.perf_counter()
    df = run_sweep({"name": "bench", "target": tgt_task,
                    "sources": {"src": {"checkpoint": ckpt + ".safetensors"}},
                    "axes": {"protocol": ["freeze"], "depth": depths}, "train": train},
                   work / "sweep.sqlite", workers=args.workers, progress=False,
                   workers_per_gpu=args.workers_per_gpu)
    sweep_s = time.perf_counter() - t0
    failed = df[df["status"] != "done"]
    if len(failed):
        raise SystemExit(f"transferlab trials failed: {failed['error'].tolist()}")
    ours = df.sort_values("depth")[["depth", "test_acc", "duration_s", "train_time_s",
                                    "feature_time_s", "features_from_depth"]]

    fused_s, fused, fused_note = (None, [], "--no-fused") if args.no_fused else \
        run_fused(ckpt + ".safetensors", task, depths, train)
    print(f"transferlab sweep {sweep_s:.1f} s; fused "
          + (f"{fused_s:.1f} s" if fused_s is not None else f"not timed: {fused_note}"))
    ours_s = min(t for t in (sweep_s, fused_s) if t is not None)
    path = "fused" if fused_s is not None and fused_s <= sweep_s else "sweep"

    base_s, base = run_baseline(ckpt + ".safetensors", task, depths, args, device, False)
    strong_s, strong = (run_baseline(ckpt + ".safetensors", task, depths, args, device, True)
                        if args.strong_baseline else (None, None))

    print(f"{'depth':>5} {'transferlab s':>14} {'from':>5} {'acc':>6} {'plain loop s':>13} "
          f"{'acc':>6}" + (f" {'plain CL s':>11} {'acc':>6}" if strong else ""))
    for i, ((_, o), b) in enumerate(zip(ours.iterrows(), base)):
        line = (f"{o['depth']:>5} {o['duration_s']:>14.2f} {o['features_from_depth']:>5} "
                f"{o['test_acc']:>6.3f} {b['time_s']:>13.2f} {b['test_acc']:>6.3f}")
        if strong:
            line += f" {strong[i]['time_s']:>11.2f} {strong[i]['test_acc']:>6.3f}"
        print(line)
    ratio = base_s / ours_s
    print(f"total: transferlab ({path}) {ours_s:.1f} s, plain loop {base_s:.1f} s: "
          f"{ratio:.2f}x (target >= {5 if device.type == 'cuda' else 3}x)")
    if strong:
        print(f"       plain loop in channels_last {strong_s:.1f} s: "
              f"{strong_s / ours_s:.2f}x")
    if args.out:
        result = {"benchmark": "depth_sweep", "data": data_name, "source_task": src_task,
                  "target_task": tgt_task, "device": str(device), "epochs": args.epochs,
                  "batch_size": args.batch_size, "width": args.width,
                  "workers": args.workers if args.workers else "default",
                  "workers_per_gpu": resolved_per_gpu,
                  "precision": "bf16-autocast" if args.bf16 else "float32",
                  "transferlab_path": path, "sweep_total_s": sweep_s,
                  "fused_total_s": fused_s, "fused_note": fused_note, "fused": fused,
                  "train_examples": len(task.y_train), "depths": depths,
                  "transferlab_total_s": ours_s, "baseline_total_s": base_s,
                  "speedup": ratio, "torch_threads": torch.get_num_threads(),
                  "strong_baseline_total_s": strong_s,
                  "speedup_vs_strong_baseline": strong_s / ours_s if strong else None,
                  "transferlab": ours.to_dict("records"), "baseline": base,
                  "strong_baseline": strong, "provenance": provenance()}
        write_text_atomic(args.out, json.dumps(result, indent=2, default=str))
        print(f"wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
