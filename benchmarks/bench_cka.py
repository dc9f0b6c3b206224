"""Benchmark linear CKA (full batch) and minibatch CKA (bounded memory).

1. Times ``linear_cka`` on n x p activations of two "layers" (default 10,000 x 2,048),
   float32 inputs as a network produces them, float64 arithmetic (feature-space form).
2. Streams ``--mb-samples`` samples (default 20,000 and 100,000) through ``MinibatchCKA`` in
   batches of ``--mb-batch`` x ``--mb-features``, each run in a fresh subprocess so that its
   peak resident memory (VmHWM from /proc, else ``resource.getrusage``) and peak
   Python/numpy allocations (``tracemalloc``; it does not see torch's allocator) belong to
   that run alone. Bounded memory means both peaks are the same
   for 20k and 100k samples, while holding all activations would need n * (p + q) * 4 bytes.

    python benchmarks/bench_cka.py [--out benchmarks/results/cka.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import torch


def related_pair(rng: np.random.Generator, n: int, p: int, q: int, w: np.ndarray | None = None):
    """Two float32 activation matrices (n, p), (n, q) with a shared linear component."""
    x = rng.standard_normal((n, p), dtype=np.float32)
    w = w if w is not None else rng.standard_normal((p, q), dtype=np.float32) / np.sqrt(p)
    y = np.maximum(x @ w + rng.standard_normal((n, q), dtype=np.float32), 0)  # ReLU-like
    return x, y


def bench_full(n: int, p: int, repeats: int, precision: str = "float64") -> dict:
    from transferlab.similarity import linear_cka

    x, y = related_pair(np.random.default_rng(0), n, p, p)
    times, cpu, value = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        value = linear_cka(x, y, precision=precision)
        times.append(time.perf_counter() - start)
        # CPU seconds of all threads: on a shared machine, wall time also counts waiting
        cpu.append(time.process_time() - start_cpu)
    # float64 multiply-adds: X^T X and Y^T Y as symmetric updates, X^T Y in full
    macs = n * (p * p / 2 + p * p / 2 + p * p)
    return {"n": n, "p": p, "q": p, "precision": precision, "repeats": repeats,
            "best_s": min(times),
            "median_s": statistics.median(times), "times_s": times, "cpu_s": cpu, "cka": value,
            "gflops_best": 2 * macs / min(times) / 1e9}


def _proc_status_mb(field: str) -> float | None:
    """VmRSS / VmHWM (peak) of this process in MB from /proc (Linux). Unlike ru_maxrss,
    VmHWM starts afresh at exec, so a child does not inherit its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child_minibatch(n: int, batch: int, features: int) -> dict:
    """Runs in its own process: stream n samples, report time and peak memory."""
    from transferlab.similarity import MinibatchCKA

    rng = np.random.default_rng(1)
    w = rng.standard_normal((features, features), dtype=np.float32) / np.sqrt(features)
    rss_before = _proc_status_mb("VmRSS")  # after imports: torch alone is a few hundred MB
    tracemalloc.start()
    est = MinibatchCKA()
    start = time.perf_counter()
    for _ in range(n // batch):
        xb, yb = related_pair(rng, batch, features, features, w)  # data made on the fly
        est.update(torch.from_numpy(xb), torch.from_numpy(yb))
    elapsed = time.perf_counter() - start
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _proc_status_mb("VmHWM")
    if peak is None:  # not Linux: ru_maxrss (kilobytes on Linux, bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "batch": batch, "features": features, "batches": est.n_batches_,
            "seconds": elapsed, "cka": est.result(), "peak_rss_mb": peak,
            "rss_after_imports_mb": rss_before, "peak_traced_mb": peak_traced / 2**20,
            "full_batch_activations_mb": n * 2 * features * 4 / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples for full-batch CKA")
    parser.add_argument("--features", type=int, default=2_048, help="features per layer")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best reported)")
    parser.add_argument("--mb-samples", default="20000,100000",
                        help="comma-separated total samples for minibatch CKA")
    parser.add_argument("--mb-batch", type=int, default=1_000, help="minibatch size")
    parser.add_argument("--mb-features", type=int, default=512, help="features per minibatch")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default="benchmarks/results/cka.json", help="JSON output path")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.child is not None:  # subprocess mode: one minibatch run, JSON on stdout
        print(json.dumps(child_minibatch(args.child, args.mb_batch, args.mb_features)))
        return 0

    from transferlab._atomic import write_text_atomic
    from transferlab.provenance import provenance

    load_before = os.getloadavg()  # the 2-core machine is shared: timings depend on this
    runs = []
    for n in [int(s) for s in args.mb_samples.split(",")]:
        cmd = [sys.executable, __file__, "--child", str(n), "--mb-batch", str(args.mb_batch),
               "--mb-features", str(args.mb_features)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))

    full = bench_full(args.n, args.features, args.repeats)
    fast = bench_full(args.n, args.features, args.repeats, precision="float32")
    for r in (full, fast):
        print(f"linear CKA {r['n']} x {r['p']} ({r['precision']} products): "
              f"best {r['best_s']:.2f} s, median {r['median_s']:.2f} s "
              f"(CPU time of all threads {min(r['cpu_s']):.2f} s), "
              f"{r['gflops_best']:.0f} GFLOP/s, cka={r['cka']:.8f}")
    print(f"float32 vs float64: {full['best_s'] / fast['best_s']:.2f}x faster, "
          f"|difference| {abs(full['cka'] - fast['cka']):.1e} (target: under 1 s)")

    print(f"\nminibatch CKA, batches of {args.mb_batch} x {args.mb_features} (float32 in):")
    print(f"{'samples':>9} {'batches':>8} {'seconds':>8} {'RSS at start MB':>16} "
          f"{'peak RSS MB':>12} {'peak traced MB':>15} {'all-in-memory MB':>17} {'cka':>7}")
    for r in runs:
        start = r["rss_after_imports_mb"]
        print(f"{r['n']:>9} {r['batches']:>8} {r['seconds']:>8.2f} "
              f"{start if start is not None else float('nan'):>16.0f} "
              f"{r['peak_rss_mb']:>12.0f} {r['peak_traced_mb']:>15.1f} "
              f"{r['full_batch_activations_mb']:>17.0f} {r['cka']:>7.4f}")

    result = {"full_batch": full, "full_batch_float32": fast,
              "float32_abs_diff": abs(full["cka"] - fast["cka"]), "minibatch": runs, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "load_avg_1_5_15_before": load_before,
              "load_avg_1_5_15_after": os.getloadavg(), "provenance": provenance()}
    write_text_atomic(args.out, json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"\nload average before/after (1 min): {load_before[0]:.1f} / "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
