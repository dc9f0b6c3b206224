"""Benchmark: what share of the GPU's bf16 peak training the built-in convnet reaches.

The convnet at width 64 on CIFAR-10-sized inputs (3 x 32 x 32, random data: only the
arithmetic matters) for several batch sizes, in transferlab's CUDA defaults (bf16
autocast, channels_last, SGD with Nesterov momentum). FLOPs of one training step (forward
+ backward; the optimiser's elementwise update is not counted) come from
``torch.utils.flop_counter.FlopCounterMode``; times from CUDA events after warm-up. Rows:

* ``matmul``: a large bf16 matmul (2 n^3 FLOPs), the ceiling this GPU reaches in practice;
* ``step``: the bare training step in a loop (no data pipeline, no Python bookkeeping):
  the most one trial's kernels can get;
* ``transfer``: one trial through ``transferlab.transfer`` (batches by index, the
  schedule, per-epoch validation on a small split), FLOPs = examples trained on x step
  FLOPs / batch size (a conv's FLOPs are linear in the batch), wall time
  of the call (validation and test scoring included, not counted as FLOPs: an
  underestimate);
* ``fused``: ``--fused-trials`` trials as one fused job (``transferlab.fused``, branch
  fused) when it imports, counted the same way (T x that).

Each row reports TFLOP/s, the share of ``--peak-tflops`` (the bf16 dense peak: about 790
measured on an H200) and the share of the matmul ceiling. A number, no goal.

    python benchmarks/bench_gpu_peak.py --out benchmarks/results/gpu_peak_cuda.json
    python benchmarks/bench_gpu_peak.py --device cpu --batch-sizes 16 --n-train 64 \\
        --steps 2 --matmul-n 256 --epochs 1   # a smoke run without a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from transferlab._atomic import write_text_atomic
from transferlab.api import transfer
from transferlab.data import from_arrays, make_task
from transferlab.models import build_model
from transferlab.provenance import provenance


class Timer:
    """Seconds between start() and stop(): CUDA events on a GPU, perf_counter elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self._a = torch.cuda.Event(enable_timing=True)
            self._b = torch.cuda.Event(enable_timing=True)
            self._a.record()
        else:
            self._t = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._b.record()
            self._b.synchronize()
            return self._a.elapsed_time(self._b) / 1e3
        return time.perf_counter() - self._t


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" \
        else contextlib.nullcontext()


def matmul_ceiling(n: int, device: torch.device, iters: int) -> dict:
    """TFLOP/s of an (n, n) @ (n, n) product in bf16 (float32 on CPU)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, dtype)
    b = torch.randn(n, n, generator=g).to(device, dtype)
    for _ in range(3):
        a @ b
    timer = Timer(device)
    timer.start()
    for _ in range(iters):
        a @ b
    s = timer.stop() / iters
    return {"n": n, "dtype": str(dtype), "time_s": s, "tflops": 2 * n**3 / s / 1e12}


def make_step(batch: int, width: int, device: torch.device, seed: int = 0):
    """(step(), model): one training step of the convnet on a fixed random batch, as
    transferlab's loop takes it (bf16 autocast on CUDA, channels_last, SGD Nesterov)."""
    torch.manual_seed(seed)
    model = build_model("convnet", 10, in_channels=3, image_size=32, width=width).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def step() -> None:
        with autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step, model


def step_flops(batch: int, width: int, device: torch.device) -> int:
    """FLOPs of one training step (forward + backward) at ``batch``."""
    step, _ = make_step(batch, width, device)
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def bare_step(batch: int, width: int, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per step of the bare loop after ``warmup`` steps."""
    step, _ = make_step(batch, width, device)
    for _ in range(warmup):
        step()
    timer = Timer(device)
    timer.start()
    for _ in range(steps):
        step()
    return timer.stop() / steps


def random_task(n_train: int, n_test: int, seed: int = 0):
    """A 10-class task of random 32 x 32 RGB images; 1/16 of the training set validates."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n_train + n_train // 15, 32, 32, 3), dtype=np.uint8)
    y = np.arange(len(x)) % 10
    xt = rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8)
    yt = np.arange(n_test) % 10
    ds = from_arrays(x, y, xt, yt, name="random32")
    return make_task("random32:val_fraction=0.0625", dataset=ds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def transfer_row(task, width: int, train: dict, device: torch.device) -> tuple[float, int]:
    """(wall seconds, examples trained on) of one trial of the convnet via ``transfer``."""
    torch.manual_seed(0)
    model = build_model("convnet", 10, in_channels=3, image_size=32, width=width)
    _sync(device)
    t0 = time.perf_counter()
    res = transfer(model, task, "freeze:0", train, seed=0, progress=False)
    _sync(device)
    wall = time.perf_counter() - t0
    return wall, res.metrics["epochs_run"] * len(task.y_train)


def fused_row(task, width: int, train: dict, trials: int, device: torch.device
              ) -> tuple[float | None, int, str]:
    """(wall seconds, examples per trial, note) of ``trials`` fused trials, or
    (None, 0, why)."""
    try:
        from transferlab.fused import FusedTrial, transfer_fused
    except ImportError as exc:
        return None, 0, f"fused engine not importable ({exc})"
    torch.manual_seed(0)
    model = build_model("convnet", 10, in_channels=3, image_size=32, width=width)
    _sync(device)
    t0 = time.perf_counter()
    try:
        res = transfer_fused(model, task, "freeze:0", [FusedTrial(seed=s) for s in range(trials)],
                             train, keep_probs=False)
    except Exception as exc:  # noqa: BLE001 - a refusal or a signature change is reported
        return None, 0, f"fused engine failed: {type(exc).__name__}: {exc}"
    _sync(device)
    wall = time.perf_counter() - t0
    return wall, res[0].metrics["epochs_run"] * len(task.y_train), ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (a smoke run)")
    ap.add_argument("--batch-sizes", default="128,512,2048")
    ap.add_argument("--width", type=int, default=64, help="convnet width (default 64)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=20, help="timed bare steps per batch size")
    ap.add_argument("--n-train", type=int, default=8192,
                    help="training examples of the transfer / fused rows (a multiple of "
                         "every batch size keeps the FLOP count exact)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the transfer rows")
    ap.add_argument("--fused-trials", type=int, default=8,
                    help="trials in the fused row (0: none)")
    ap.add_argument("--matmul-n", type=int, default=8192)
    ap.add_argument("--peak-tflops", type=float, default=790.0,
                    help="the GPU's bf16 dense peak in TFLOP/s (H200: about 790 measured)")
    ap.add_argument("--out", help="write the numbers and provenance as JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    mm = matmul_ceiling(args.matmul_n, device, iters=20)
    print(f"matmul {args.matmul_n}^3 {mm['dtype']}: {mm['tflops']:.1f} TFLOP/s "
          f"({100 * mm['tflops'] / args.peak_tflops:.1f}% of {args.peak_tflops:g})")

    def shares(tflops: float) -> dict:
        return {"tflops": tflops, "pct_of_peak": 100 * tflops / args.peak_tflops,
                "pct_of_matmul": 100 * tflops / mm["tflops"]}

    task = random_task(args.n_train, n_test=512)
    rows = []
    for b in sizes:
        flops = step_flops(b, args.width, device)
        s = bare_step(b, args.width, device, args.warmup, args.steps)
        row = {"batch_size": b, "step_gflop": flops / 1e9, "step_s": s,
               "step": shares(flops / s / 1e12)}
        train = {"epochs": args.epochs, "batch_size": b, "lr": 0.01, "device": str(device),
                 "schedule": "none"}
        per_example = flops / b
        wall, seen = transfer_row(task, args.width, train, device)
        row["transfer"] = {"wall_s": wall, "examples": seen,
                           **shares(seen * per_example / wall / 1e12)}
        if args.fused_trials:
            fw, fseen, note = fused_row(task, args.width, train, args.fused_trials, device)
            row["fused"] = ({"trials": args.fused_trials, "wall_s": fw, "examples": fseen,
                             **shares(args.fused_trials * fseen * per_example / fw / 1e12)}
                            if fw is not None else {"trials": args.fused_trials, "note": note})
        rows.append(row)
        line = (f"batch {b:>5}: step {flops / 1e9:8.2f} GFLOP {1e3 * s:8.3f} ms "
                f"{row['step']['tflops']:7.2f} TFLOP/s ({row['step']['pct_of_peak']:.1f}% of "
                f"peak); transfer {row['transfer']['tflops']:7.2f} TFLOP/s "
                f"({row['transfer']['pct_of_peak']:.1f}%)")
        if "fused" in row:
            f = row["fused"]
            line += (f"; fused x{f['trials']} {f['tflops']:7.2f} TFLOP/s "
                     f"({f['pct_of_peak']:.1f}%)" if "tflops" in f else f"; {f['note']}")
        print(line)
    if args.out:
        result = {"benchmark": "gpu_peak", "device": str(device),
                  "model": {"arch": "convnet", "width": args.width, "input": [3, 32, 32],
                            "classes": 10},
                  "precision": "bf16-autocast" if device.type == "cuda" else "float32",
                  "memory_format": "channels_last", "optimizer": "sgd nesterov",
                  "flops": "torch.utils.flop_counter.FlopCounterMode, forward + backward",
                  "timing": "CUDA events after warm-up (bare steps); wall clock with "
                            "synchronisation (transfer, fused)",
                  "peak_tflops": args.peak_tflops, "matmul": mm, "n_train": len(task.y_train),
                  "epochs": args.epochs, "warmup": args.warmup, "steps": args.steps,
                  "rows": rows, "provenance": provenance()}
        write_text_atomic(args.out, json.dumps(result, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
