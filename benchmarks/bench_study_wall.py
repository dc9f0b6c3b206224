"""Benchmark: wall time of two quick studies end to end on this machine's device.

Runs, each in a fresh process and a fresh output folder (nothing resumed), the commands
benchmarks/gpu/check.sh runs in its correctness phase:

    transferlab study yosinski --dataset mnist --split random --seeds 1 --budget quick
    transferlab study fewshot --pretrain mnist --target kmnist --shots 1,5 --episodes 3 \\
        --budget quick

and writes their wall times (imports, pretraining, sweeps, figures and report included: what
a user waits for) to ``study_wall_<device>.json``. Run it alone on the machine, once on the
CPU (``--device cpu`` hides the GPUs from the studies) and once on the GPU; the ratio of the
two files is the GPU's speed-up on a whole study.

    python benchmarks/bench_study_wall.py --device cpu --out-dir benchmarks/results
    python benchmarks/bench_study_wall.py --device cuda --out-dir benchmarks/results
    python benchmarks/bench_study_wall.py --device cpu --tiny   # a check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transferlab._atomic import write_text_atomic
from transferlab.provenance import provenance

STUDIES = {
    "yosinski": ["--dataset", "mnist", "--split", "random", "--seeds", "1", "--budget", "quick"],
    "fewshot": ["--pretrain", "mnist", "--target", "kmnist", "--shots", "1,5", "--episodes",
                "3", "--budget", "quick"],
}
# Seconds-long stand-ins on scikit-learn's digits (offline), to check the script itself.
TINY = {
    "yosinski": ["--dataset", "digits", "--split", "random", "--seeds", "1", "--budget",
                 "quick", "--depths", "1,4"],
    "fewshot": ["--pretrain", "digits", "--shots", "1", "--episodes", "2", "--budget",
                "quick", "--protocols", "linear-probe,finetune"],
}


def run_study(name: str, args: list[str], env: dict, timeout: float) -> dict:
    """Run one study in a fresh process and output folder; its wall time and exit code."""
    with tempfile.TemporaryDirectory(prefix=f"study_wall_{name}_") as out:
        cmd = [sys.executable, "-m", "transferlab", "study", name, *args, "--out", out,
               "--quiet"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2000:]
        except subprocess.TimeoutExpired:
            rc, tail = 124, f"timed out after {timeout:g} s"
        wall = time.perf_counter() - t0
    display = shlex.join(["transferlab", "study", name, *args, "--out", "DIR", "--quiet"])
    return {"study": name, "command": display, "wall_s": wall, "rc": rc,
            "output_tail": tail if rc else tail[-300:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="cpu hides the GPUs from the studies (CUDA_VISIBLE_DEVICES=''); "
                         "auto and cuda leave them visible (default auto)")
    ap.add_argument("--studies", default="yosinski,fewshot", help="comma list")
    ap.add_argument("--tiny", action="store_true",
                    help="seconds-long settings on digits, to check that this script runs")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per study")
    ap.add_argument("--out-dir", default=".",
                    help="folder of study_wall_<device>.json (default: here)")
    ap.add_argument("--out", default=None, help="exact output file instead of --out-dir's")
    args = ap.parse_args(argv)

    import torch

    env = dict(os.environ)
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
        device, name = "cpu", "cpu"
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device=cuda is invalid here: no CUDA device; use --device cpu")
        cuda = torch.cuda.is_available()
        device, name = ("cuda", torch.cuda.get_device_name(0)) if cuda else ("cpu", "cpu")
    table = TINY if args.tiny else STUDIES
    rows = []
    for study in [s.strip() for s in args.studies.split(",") if s.strip()]:
        if study not in table:
            raise SystemExit(f"--studies: {study!r} is invalid: allowed are {sorted(table)}")
        row = run_study(study, table[study], env, args.timeout)
        rows.append(row)
        print(f"{study:>9}: {row['wall_s']:7.1f} s on {name} (rc {row['rc']})"
              + (f"\n{row['output_tail']}" if row["rc"] else ""))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    result = {"benchmark": "study_wall", "device": device, "device_name": name,
              "tiny": args.tiny, "cores": cores, "studies": rows,
              "total_s": sum(r["wall_s"] for r in rows), "provenance": provenance()}
    out = Path(args.out) if args.out else Path(args.out_dir) / (
        f"study_wall_{device}{'_tiny' if args.tiny else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
