"""Run the guide study: sweeps per case, the advisor's evidence, tables, calibration.

Everything trains on the sweep engine into ``OUT/guide.sqlite`` (a rerun resumes); the
advisor's evidence is recomputed from the cached seed-0 source (seconds). Outputs:
``guide.json`` (cases, per-candidate means and CIs, grid, findings, calibration, held-out
regret table, provenance), ``lr_mult.png``, ``grid.png``, ``report.html``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from transferlab._atomic import write_text_atomic
from transferlab.advise import calibrate
from transferlab.advise.evidence import measure
from transferlab.advise.rules import GUIDE, Thresholds, guide_rule
from transferlab.report.outputs import json_safe
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.studies.guide.cases import (ARCH, CASE_SETS, Case, GuideBudget, get_budget,
                                             sweep_specs)
from transferlab.studies.guide.config import GuideConfig
from transferlab.studies.kit.stats import mean_std, paired_family, t_interval

DB_NAME = "guide.sqlite"
EVIDENCE_PER_CLASS = 300


def _label(row) -> str:
    if row["protocol_spec"] == "finetune":
        return f"finetune (lr_mult {float(row['train.lr_mult']):g})"
    return row["protocol_spec"]


def _cells(df: pd.DataFrame) -> dict:
    """label -> {mean, std, ci_low, ci_high, n, values {seed: acc}, val_mean}."""
    out = {}
    done = df[df["status"] == "done"]
    for label, g in done.groupby(done.apply(_label, axis=1)):
        vals = {int(s): float(a) for s, a in zip(g["seed"], g["test_acc"])}
        m, s = mean_std(list(vals.values()))
        ci = t_interval(list(vals.values()))
        out[label] = {"mean": m, "std": s, "ci_low": ci[0] if ci else None,
                      "ci_high": ci[1] if ci else None, "n": len(vals), "values": vals,
                      "val_mean": float(pd.to_numeric(g["val_acc"]).mean()),
                      "time_s": float(pd.to_numeric(g["duration_s"]).sum())}
    return out


def _source_ckpt(spec: dict, db: Path) -> str:
    from transferlab.sweep import plan_sweep
    from transferlab.sweep.cache import source_path

    plan = plan_sweep(spec)
    return str(source_path(db, plan.sources["source"].pretrain_config(0, plan.data_dir))) \
        + ".safetensors"


def run_case(case: Case, b: GuideBudget, seeds: list[int], db: Path, data_dir, workers,
             progress: bool) -> dict:
    """Sweeps + evidence of one case -> its record (cells, evidence, settings)."""
    from transferlab.checkpoint import load_checkpoint
    from transferlab.data import make_task
    from transferlab.models import build_model
    from transferlab.sweep import run_sweep

    n_blocks = len(build_model(ARCH, 2, in_channels=1, image_size=b.size,
                               **b.arch_kwargs()).block_names)
    task = make_task(case.target_task(b), data_dir=data_dir)
    specs = sweep_specs(case, b, seeds, n_blocks, data_dir, len(task.y_train))
    t0 = time.perf_counter()
    df = pd.concat([run_sweep(s, db, workers=workers, progress=progress) for s in specs],
                   ignore_index=True)
    from transferlab.sweep.failures import check_trials

    # every trial failed: TrialsFailed naming the causes, before anything reads metrics
    failures = check_trials(df, f"study guide, case {case.name}")
    model, _ = load_checkpoint(_source_ckpt(specs[0], db))
    ev = measure(model, task, per_class=EVIDENCE_PER_CLASS)
    cells = _cells(df)
    return {"name": case.name, "role": case.role, "trial_failures": failures,
            "scenario": case.scenario(),
            "source_task": case.source_task(b), "target_task": specs[0]["target"],
            "nominal_similar": case.similar, "k": ev.examples_per_class,
            "retained": ev.retained, "best_depth": ev.best_depth, "num_blocks": n_blocks,
            "evidence": ev.to_dict(), "cells": cells,
            "acc": {k: v["mean"] for k, v in cells.items() if v["mean"] is not None},
            "val_acc": {k: v["val_mean"] for k, v in cells.items()
                        if v["val_mean"] is not None and v["val_mean"] == v["val_mean"]},
            "train": specs[0]["train"], "trials": len(df),
            "failed": int((df["status"] != "done").sum()),
            "wall_time_s": time.perf_counter() - t0}


def winner(case: dict) -> str:
    """The candidate of highest mean VALIDATION accuracy (ties: the first in label order);
    test accuracy never chooses it."""
    val = case["val_acc"]
    return max(sorted(val), key=lambda lab: val[lab])


def grid(fit_cases: list[dict], th: Thresholds) -> list[dict]:
    """The 2 x 2 grid: per scenario the winner (chosen on validation), the guide's advice,
    transferlab's advice, and the test accuracy each gives (mean over seeds)."""
    rows = []
    for c in fit_cases:
        best = winner(c)
        guide = guide_rule(c["k"], c["nominal_similar"], c["num_blocks"], th)
        ours = calibrate.advised_label(c, th)
        rows.append({"scenario": c["scenario"], "case": c["name"], "winner": best,
                     "winner_acc": c["acc"].get(best), "winner_val_acc": c["val_acc"][best],
                     "guide": guide,
                     "guide_acc": c["acc"].get(guide), "transferlab": ours,
                     "transferlab_acc": c["acc"].get(ours),
                     "guide_says": GUIDE[tuple(c["scenario"].split("-"))]})
    return rows


def findings(fit_cases: list[dict], rows: list[dict]) -> dict:
    """Paired tests over seeds (Holm per family): winner vs the guide's advice per scenario;
    finetune lr_mult 0.1 vs 1.0 per case (the smaller-learning-rate claim)."""
    by = {c["name"]: c for c in fit_cases}
    guide_family = [(r["scenario"], by[r["case"]]["cells"][r["winner"]]["values"],
                     by[r["case"]]["cells"].get(r["guide"], {}).get("values", {}))
                    for r in rows if r["winner"] != r["guide"]]
    lr_family = []
    for c in fit_cases:
        a, b = c["cells"].get("finetune (lr_mult 0.1)"), c["cells"].get("finetune (lr_mult 1)")
        if a and b:
            lr_family.append((c["name"], a["values"], b["values"]))
    return {"winner_vs_guide": paired_family(guide_family, label="scenario"),
            "lr_mult_0.1_vs_1": paired_family(lr_family, label="case")}


def run_config(cfg: GuideConfig, progress: bool = True) -> dict:
    from transferlab.studies.guide import plot, report

    t0 = time.perf_counter()
    b = get_budget(cfg.budget)
    seeds = list(range(cfg.seeds))
    out = Path(cfg.out or f"runs/guide-{cfg.cases}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={str(out)!r} is a file: allowed is a folder; pass another")
    out.mkdir(parents=True, exist_ok=True)
    cases = [c for c in CASE_SETS[cfg.cases] if cfg.roles in ("all", c.role)]
    records = []
    for c in cases:
        rec = run_case(c, b, seeds, out / DB_NAME, cfg.data_dir, cfg.workers, progress)
        records.append(rec)
        _write(out, cfg, b, records, None, None, time.perf_counter() - t0)  # partial
    fit_cases = [r for r in records if r["role"] == "fit"]
    held = [r for r in records if r["role"] == "heldout"]
    th, fit_info = (calibrate.fit(fit_cases) if fit_cases else (Thresholds(), {}))
    result = _write(out, cfg, b, records, th, fit_info, time.perf_counter() - t0)
    result["trial_failures"] = "; ".join(f"case {r['name']}: {r['trial_failures']}"
                                         for r in records if r.get("trial_failures")) or None
    rows = grid(fit_cases, th)
    result.update(grid=rows, findings=findings(fit_cases, rows),
                  fit_table=calibrate.evaluate(fit_cases, th),
                  heldout_table=calibrate.evaluate(held, th) if held else [])
    result["heldout_summary"] = calibrate.summary(result["heldout_table"]) if held else {}
    result["fit_summary"] = calibrate.summary(result["fit_table"]) if fit_cases else {}
    files = {"json": str(out / "guide.json"), "report": str(out / "report.html"),
             "lr_mult": str(out / "lr_mult.png"), "grid": str(out / "grid.png"),
             "database": str(out / DB_NAME)}
    images = []
    if fit_cases:
        images.append((plot.save_png(plot.draw_lr(fit_cases), files["lr_mult"]),
                       "Fine-tuning test accuracy against lr_mult (the pretrained blocks' "
                       "learning rate relative to the head's), mean and 95% CI over seeds."))
        images.append((plot.save_png(plot.draw_grid(rows), files["grid"]),
                       "Per scenario: the accuracy of the measured winner, the guide's advice "
                       "and transferlab's advice."))
    result["files"] = files
    write_text_atomic(files["json"], json.dumps(json_safe(result), indent=1, default=str,
                                                allow_nan=False))
    report.write_report(files["report"], result, images)
    return result


def _write(out: Path, cfg, b, records, th, fit_info, wall) -> dict:
    result = {"study": "guide", "settings": {**cfg.__dict__, "budget_settings": b.to_dict(),
                                            "evidence_per_class": EVIDENCE_PER_CLASS,
                                            "wall_time_s": round(wall, 1)},
              "cases": records, "thresholds": th.to_dict() if th else None,
              "calibration": fit_info, "provenance": provenance()}
    write_text_atomic(out / "guide.json", json.dumps(json_safe(result), indent=1, default=str,
                                                     allow_nan=False))
    return result


def summarize(result: dict) -> tuple[list[str], dict]:
    s = result["settings"]
    lines = [f"guide study ({s['cases']}, {s['budget']}): {len(result['cases'])} cases, "
             f"{s['wall_time_s']:.0f} s; thresholds {result['thresholds']}"]
    for r in result.get("grid", []):
        lines.append(f"  {r['scenario']:<17} winner {r['winner']} {r['winner_acc']:.4f} | "
                     f"guide {r['guide']} {_f(r['guide_acc'])} | transferlab "
                     f"{r['transferlab']} {_f(r['transferlab_acc'])}")
    for name, v in (result.get("heldout_summary") or {}).items():
        lines.append(f"  held-out {name}: mean regret {_f(v['mean_regret'])}, within 1 "
                     f"point {_f(v['within_1pt'])} of {v['n']}")
    lines.append(f"report: {result['files']['report']}")
    return lines, {k: result.get(k) for k in ("grid", "thresholds", "heldout_summary",
                                              "heldout_table", "files")}


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"
