"""Every preset through the CLI on real data: pretrain on classes A, transfer to classes B.

For each preset: frozen tensors in the saved checkpoint must be bit-identical to the
source's, trained ones must differ, and test accuracy must beat chance. Writes a JSON
table with the numbers and the provenance.

    python benchmarks/check_presets.py --dataset mnist --epochs 2 --out benchmarks/results/presets_mnist.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from transferlab.provenance import provenance

# preset -> number of leading blocks that must stay bit-identical (None: the protocol's depth)
PRESETS = {"linear-probe": 7, "freeze:3": 3, "reinit:3": 3, "reinit+:3": 0, "finetune": 0,
           "bn-only": 0, "conv-only": 0, "head-only": 7, "scratch": 0}


def cli(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "transferlab", *args, "--json", "--quiet"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--source-classes", default="0-4")
    ap.add_argument("--target-classes", default="5-9")
    ap.add_argument("--epochs", default="2", help="epochs for pretraining and each transfer")
    ap.add_argument("--out", default="benchmarks/results/presets.json")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        t0 = time.perf_counter()
        pre = cli("pretrain", "--task", f"{args.dataset}:classes={args.source_classes}",
                  "--out", str(src), "--epochs", args.epochs)
        print(f"pretrain: test_acc={pre['metrics']['test_acc']:.4f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)
        a = load_file(str(src) + ".safetensors")
        for preset, frozen in PRESETS.items():
            dst = Path(tmp) / preset.replace(":", "_")
            t0 = time.perf_counter()
            res = cli("transfer", "--source", str(src) + ".safetensors", "--task",
                      f"{args.dataset}:classes={args.target_classes}", "--protocol", preset,
                      "--out", str(dst), "--epochs", args.epochs)
            b = load_file(str(dst) + ".safetensors")
            blocks = {k: int(k.split(".")[1]) for k in a if k.startswith("blocks.")}
            frozen_same = all(bool((a[k] == b[k]).all()) for k, i in blocks.items() if i < frozen)
            trained_moved = any(not bool((a[k] == b[k]).all())
                                for k, i in blocks.items() if i >= frozen)
            m = res["metrics"]
            row = {"preset": preset, "test_acc": m["test_acc"], "test_nll": m["test_nll"],
                   "trainable_params": m["trainable_params"], "frozen_params": m["frozen_params"],
                   "frozen_bit_identical": frozen_same,
                   "trained_changed": trained_moved if frozen < 7 else None,
                   "wall_s": time.perf_counter() - t0}
            rows.append(row)
            print(f"{preset:13s} acc={row['test_acc']:.4f} nll={row['test_nll']:.4f} "
                  f"frozen_identical={frozen_same} trained_changed={row['trained_changed']} "
                  f"({row['wall_s']:.0f}s)", flush=True)
    ok = all(r["frozen_bit_identical"] and r["trained_changed"] is not False
             and r["test_acc"] > 0.2 for r in rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"dataset": args.dataset, "epochs": args.epochs,
                                          "pretrain": pre["metrics"], "rows": rows, "ok": ok,
                                          "provenance": provenance()}, indent=2))
    print("all checks passed" if ok else "SOME CHECKS FAILED", f"-> {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
