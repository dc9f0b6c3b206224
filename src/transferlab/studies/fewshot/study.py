"""The few-shot fine-tuning study: which parameters to tune with k examples per class.

>>> from transferlab.studies import fewshot
>>> res = fewshot.run(pretrain="digits", budget="quick", out="runs/fs")  # doctest: +SKIP
>>> [(c["protocol"], c["shots"], c["mean"]) for c in res["cells"]]      # doctest: +SKIP

After "How to fine-tune deep neural networks in few-shot learning?" (arXiv 2012.00204): a
source network (pretrained here or given as a checkpoint) is fine-tuned on E support sets of
k examples per class of the target with each protocol (linear-probe, head-only, bn-only,
conv-only, finetune, bn-adapt, and the -frozen-stats variants); every protocol sees the same
support sets, so differences are paired. Trials run on the sweep engine into
``OUT/fewshot.sqlite`` (resumable: a rerun only trains what is missing); the trained weights
are kept for the weight analysis. The folder receives ``fewshot.json``, ``accuracy.png``,
``weights.png`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pandas as pd

from transferlab._atomic import write_text_atomic
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.sweep.failures import check_trials
from transferlab.studies.fewshot import findings as findings_mod
from transferlab.studies.fewshot import plot, report
from transferlab.studies.fewshot.cells import compute_cells, fmt_cell, pairwise
from transferlab.studies.fewshot.config import FewshotConfig
from transferlab.studies.fewshot.design import EFFICIENTNET, Design, design, sweep_specs
from transferlab.studies.fewshot.weightchange import weight_change

__all__ = ["run", "run_config", "summarize", "DB_NAME", "default_out"]

DB_NAME = "fewshot.sqlite"
STUDY = "fewshot"


def default_out(d: Design) -> Path:
    return Path("runs") / f"fewshot-{d.source_name}-{d.target_name}"


def _efficientnet_source(d: Design, out: Path) -> str:
    """EfficientNet-Lite0 with its ImageNet weights, saved once at the study's image size."""
    from transferlab.checkpoint import read_meta, save_checkpoint
    from transferlab.models import build_model

    path = out / f"source-{EFFICIENTNET}-{d.size}.safetensors"
    try:
        if read_meta(path).get("arch", {}).get("image_size") == d.size:
            return str(path)
    except UserError:
        pass
    model = build_model(EFFICIENTNET, 1000, 3, d.size, pretrained=True)
    save_checkpoint(path, model, {"task": "imagenet", "classes": [str(i) for i in range(1000)],
                                  "protocol": "pretrained", "seed": 0, "metrics": {}})
    return str(path)


def _source_path(d: Design, db: Path, spec: dict) -> str:
    """Where the trials' source checkpoint is (a pretrained one is in the sweep's cache)."""
    if "checkpoint" in spec["sources"]["source"]:
        return spec["sources"]["source"]["checkpoint"]
    from transferlab.sweep import plan_sweep
    from transferlab.sweep.cache import source_path

    plan = plan_sweep(spec)
    return str(source_path(db, plan.sources["source"].pretrain_config(0, plan.data_dir)))


def run(pretrain: str | None = "digits", source: str | None = None, target: str | None = None,
        classes=None, shots: list[int] | None = None, episodes: int | None = None,
        protocols: list[str] | None = None, seeds: int = 1, budget: str = "quick",
        size: int | None = None, weights: bool = True, backend: str = "local",
        workers: int | None = None, out: str | os.PathLike | None = None,
        data_dir: str | None = None, progress: bool = True) -> dict:
    """Run the study (or resume it) and write its outputs; returns the result dict.

    Arguments are the ``FewshotConfig`` fields (see ``transferlab study fewshot --help``).
    Returns (and writes to ``OUT/fewshot.json``): ``cells`` (``{protocol, shots, mean, std,
    ci_low, ci_high, n, n_failed, values, units}``), ``pairwise`` (paired tests per k),
    ``weight_change`` (``{protocol, shots, block, kind, relative_change, ci_low, ci_high, n,
    values, cosine_between_episodes, n_params}``), ``findings``, ``settings``,
    ``provenance``, ``files``.
    """
    cfg = FewshotConfig(pretrain=pretrain, source=source, target=target, classes=classes,
                        shots=shots, episodes=episodes, protocols=protocols, seeds=seeds,
                        budget=budget, size=size, weights=weights, backend=backend,
                        workers=workers, out=None if out is None else str(out),
                        data_dir=data_dir)
    return run_config(cfg, progress=progress)


def run_config(cfg: FewshotConfig, progress: bool = True) -> dict:
    """``run`` from a ``FewshotConfig`` (what ``transferlab study fewshot`` calls)."""
    t0 = time.perf_counter()
    d = design(cfg)  # every check that can fail does so here, before anything is written
    out = Path(cfg.out) if cfg.out is not None else default_out(d)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={str(out)!r} is a file: allowed is a folder (new or from an "
                        "earlier run, which is resumed); pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    db = out / DB_NAME
    ckpt = _efficientnet_source(d, out) if d.source_kind == EFFICIENTNET else None
    from transferlab.sweep import run_sweep

    specs = sweep_specs(d, ckpt)
    frames = [run_sweep(spec, db, backend=cfg.backend, workers=cfg.workers, progress=progress)
              for spec in specs]
    df = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    # every trial failed: TrialsFailed naming the causes, before anything reads metrics
    failures = check_trials(df, f"study {STUDY}")
    cells = compute_cells(df, d.protocols, d.shots)
    pairs = pairwise(cells, d.protocols, d.shots)
    src_path = _source_path(d, db, specs[0])
    weight_rows: list[dict] = []
    if d.weights:
        from transferlab.checkpoint import load_checkpoint

        weight_rows = weight_change(df, db, lambda: load_checkpoint(src_path)[0],
                                    len(d.target_classes), d.protocols, d.shots)
    found = findings_mod.findings(cells, d.protocols, d.shots, pairs, weight_rows)
    from transferlab.checkpoint import read_meta

    src_metrics = read_meta(src_path).get("metrics") or {}
    wall = time.perf_counter() - t0
    settings = {**d.settings(), "backend": cfg.backend, "workers": cfg.workers,
                "trials": len(df), "trials_failed": int((df["status"] != "done").sum()),
                "trial_time_s": round(float(pd.to_numeric(df["duration_s"]).sum()), 1),
                "wall_time_s": round(wall, 1), "database": str(db.resolve()),
                "source_checkpoint": src_path,
                "source_test_acc": src_metrics.get("test_acc")}
    files = {"database": str(db), "json": str(out / "fewshot.json"),
             "accuracy": str(out / "accuracy.png"), "report": str(out / "report.html")}
    title = (f"Few-shot fine-tuning: {d.source_name} → {d.target_name} "
             f"({len(d.target_classes)} ways, k = {', '.join(map(str, d.shots))})")
    images = [(plot.save_png(plot.draw_accuracy(cells, d.protocols, d.shots, title),
                             files["accuracy"]),
               "Test accuracy against k (log scale): mean per protocol, band = 95% t-interval "
               "over episodes, dots = episodes; dashed: normalisation statistics frozen.")]
    if weight_rows:
        files["weights"] = str(out / "weights.png")
        k = max(d.shots)
        images.append((plot.save_png(plot.draw_heatmaps(weight_rows, d.protocols,
                                                        d.block_names, k), files["weights"]),
                       f"Relative weight change per block x protocol at k = {k}, one panel "
                       "per parameter kind (log colour scale; '0': bit-identical; grey: the "
                       "block has no such tensor)."))
    result = {"study": STUDY, "trial_failures": failures, "cells": cells, "pairwise": pairs,
              "weight_change": weight_rows,
              "findings_rule": findings_mod.RULE, "findings": [f.to_dict() for f in found],
              "block_names": d.block_names, "settings": settings, "provenance": provenance(),
              "files": files}
    write_text_atomic(files["json"], json.dumps(_strict(result), indent=1, default=str,
                                                allow_nan=False))
    report.write_report(files["report"], result, found, images, title)
    return result


def _strict(obj):
    """A copy with every non-finite float as None (strict JSON: a t statistic of a test
    with zero spread is infinite)."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def summarize(result: dict) -> tuple[list[str], dict]:
    """The CLI's lines and its ``--json`` summary."""
    s, files = result["settings"], result["files"]
    lines = [f"fewshot study {s['source_name']} -> {s['target_name']} ({s['ways']} ways): "
             f"{s['trials']} trials ({s['trials_failed']} failed), {s['wall_time_s']:.0f} s",
             "test accuracy %, mean ± 95% CI (n):"]
    width = max(len(p) for p in s["protocols"])
    lines.append(" " * (width + 2) + "".join(f"{'k=' + str(k):>22s}" for k in s["shots"]))
    for p in s["protocols"]:
        row = [next((c for c in result["cells"] if c["protocol"] == p and c["shots"] == k),
                    None) for k in s["shots"]]
        lines.append(f"  {p:<{width}s}" + "".join(f"{fmt_cell(c):>22s}" for c in row))
    lines.append(result["findings_rule"])
    lines += [f"- {f['title']}: {f['text']}" for f in result["findings"]]
    lines.append(f"report: {files['report']}")
    summary = {"files": files, "findings": result["findings"],
               "means": {f"{c['protocol']}@{c['shots']}": c["mean"] for c in result["cells"]},
               "wall_time_s": s["wall_time_s"], "trials": s["trials"],
               "trials_failed": s["trials_failed"]}
    return lines, summary
