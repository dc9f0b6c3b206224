"""Incremental defrosting (Gerace et al. 2023): the optimal freeze depth against target size
and source-target correlation, and what representations say about it.

>>> from transferlab.studies import defrost
>>> res = defrost.run(synthetic=True, budget="quick", out="runs/defrost")   # doctest: +SKIP
>>> res["optimal"]                                                          # doctest: +SKIP

Everything runs on the sweep engine into ``OUT/defrost.sqlite`` (resumable: a rerun only
trains what is missing); the folder receives ``defrost.json``, ``heatmap.png``,
``curves.png``, ``similarity.png`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from transferlab._atomic import write_text_atomic
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.studies.defrost import findings as findings_mod
from transferlab.studies.defrost import plot, report, reps
from transferlab.studies.defrost.config import DefrostConfig
from transferlab.studies.defrost.curves import compute_curves
from transferlab.studies.defrost.design import Design, design, sweep_specs, tag

__all__ = ["run", "run_config", "summarize", "DB_NAME", "default_out"]

DB_NAME = "defrost.sqlite"
STUDY = "defrost"


def default_out(d: Design) -> Path:
    return Path("runs") / f"defrost-{tag(d)}"


def _run_sweeps(d: Design, db: Path, backend: str, workers, address, progress) -> pd.DataFrame:
    from transferlab.sweep import run_sweep

    frames = [run_sweep(spec, db, backend=backend, workers=workers, address=address,
                        progress=progress) for spec in sweep_specs(d)]
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise UserError("the study produced no trials; check --depths and --sizes")
    return pd.concat(frames, ignore_index=True)


def run(progress: bool = True, **kwargs) -> dict:
    """Run the study (or resume it); keywords are ``DefrostConfig`` fields. Returns the
    result also written to ``OUT/defrost.json``."""
    return run_config(DefrostConfig(**kwargs), progress=progress)


def run_config(cfg: DefrostConfig, progress: bool = True) -> dict:
    """``run`` from a ``DefrostConfig`` (what ``transferlab study defrost`` calls)."""
    t0 = time.perf_counter()
    d = design(cfg)
    out = Path(cfg.out) if cfg.out is not None else default_out(d)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={str(out)!r} is a file: allowed is a folder (new or from an "
                        "earlier run, which is resumed); pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    db = out / DB_NAME
    df = _run_sweeps(d, db, cfg.backend, cfg.workers, cfg.address, progress)
    result = compute_curves(df, d)
    result["representations"] = reps.compare(d, df, db)
    wall = time.perf_counter() - t0
    result.update(study=STUDY, block_names=d.block_names, settings={
        **d.settings(), "backend": cfg.backend, "workers": cfg.workers, "trials": len(df),
        "trials_failed": int((df["status"] != "done").sum()),
        "trial_time_s": round(float(pd.to_numeric(df["duration_s"]).sum()), 1),
        "wall_time_s": round(wall, 1), "database": str(db.resolve())},
        provenance=provenance())
    rule, found, gains = findings_mod.findings(result, d.num_blocks)
    result.update(findings_rule=rule, findings=[f.to_dict() for f in found], gains=gains)
    files = {"database": str(db), "result": str(out / "defrost.json"),
             "heatmap": str(out / "heatmap.png"), "curves": str(out / "curves.png"),
             "similarity": str(out / "similarity.png"), "report": str(out / "report.html")}
    pair = ("synthetic correlated hidden-manifold model" if d.kind == "synthetic"
            else f"{d.source_tasks[d.seeds[0]]} -> {d.levels[0]}")
    images = [(plot.save_png(plot.heatmap(result, d.knob, d.num_blocks), files["heatmap"]),
               "Optimal freeze depth n* (argmax of the mean validation accuracy; its test "
               "accuracy beside it) per cell."),
              (plot.save_png(plot.curves_figure(result, d.block_names), files["curves"]),
               "Test accuracy against the number of frozen blocks n (mean, 95% CI), one "
               "line per target size; ring: n*; dashed: scratch.")]
    if result["representations"]:
        images.append((plot.save_png(plot.similarity_figure(result["representations"], result,
                                                            d.block_names),
                                     files["similarity"]),
                       "Source vs target-from-scratch networks, block by block (largest N); "
                       "dotted: where each similarity falls most; red band: n*."))
    else:
        files.pop("similarity")
    result["files"] = files
    write_text_atomic(files["result"], json.dumps(result, indent=1, default=str,
                                                  allow_nan=False))
    report.write_report(files["report"], result, found, rule, images,
                        f"Incremental defrosting: {pair}")
    return result


def summarize(result: dict) -> tuple[list[str], dict]:
    """The CLI's lines and its ``--json`` summary."""
    s = result["settings"]
    lines = [f"defrost study ({s['kind']}): {s['trials']} trials ({s['trials_failed']} failed), "
             f"{s['wall_time_s']:.0f} s", "n* per (N, correlation):"]
    lines += [f"  N={o['target_size']} corr={o['correlation']}: n*={o['depth']} "
              f"({100 * o['mean']:.1f}%)" for o in result["optimal"]]
    lines.append(result["findings_rule"])
    lines += [f"- {f['title']}: {f['text']}" for f in result["findings"]]
    lines.append(f"report: {result['files']['report']}")
    summary = {"files": result["files"], "optimal": result["optimal"],
               "findings": result["findings"], "wall_time_s": s["wall_time_s"],
               "trials": s["trials"], "trials_failed": s["trials_failed"]}
    return lines, summary
