"""Transfer learning for ensembles (Shashkov et al. 2022), measured on one pair.

M source members (the built-in convnet pretrained with seeds 0..M-1, plus one more for the
member-addition check) are transferred to the target by every strategy of ``design``, for
each replicate seed, on the sweep engine (``OUT/ensembles.sqlite``: a rerun resumes, and
strategies that share a trial run it once). The folder receives ``ensembles.json``
(``strategies`` rows, per-replicate ``units``, ``additions``, ``findings``, settings,
provenance), ``metrics_vs_time.png``, ``reliability.png`` and ``report.html``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from transferlab._atomic import write_text_atomic
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.studies.ensembles import design, plot, report
from transferlab.studies.ensembles.budgets import PAIRS, get_budget
from transferlab.studies.ensembles.config import EnsemblesConfig
from transferlab.studies.ensembles.findings import findings

STUDY = "ensembles"
DB_NAME = "ensembles.sqlite"
METRICS = ("accuracy", "nll", "ece", "brier", "disagreement", "member_accuracy",
           "member_nll", "member_brier", "wall_time_s", "epochs")


def default_out(pair: str) -> Path:
    return Path("runs") / f"ensembles-{pair}"


def aggregate(units: dict, order: dict[str, str]) -> list[dict]:
    """One row per strategy: the mean (and ``<metric>_std``, ddof 1) over replicates."""
    rows = []
    for label, compute in order.items():
        vals = [u[label] for u in units.values() if label in u]
        if not vals:
            continue
        row = {"strategy": label, "compute": compute, "n": len(vals)}
        for m in METRICS:
            xs = [v[m] for v in vals if v.get(m) is not None]
            row[m] = float(np.mean(xs)) if xs else None
            row[f"{m}_std"] = float(np.std(xs, ddof=1)) if len(xs) > 1 else None
        rows.append(row)
    return rows


def _add(folder: Path, source: str, label: str, progress: bool) -> dict:
    """Member addition on replicate ``folder`` (kept in add.json: done once)."""
    from transferlab.ensemble import add_member

    path = folder / "add.json"
    if path.is_file():
        return json.loads(path.read_text())
    res = add_member(folder, source, label, compare=True, progress=progress)
    write_text_atomic(path, json.dumps(res, indent=1, default=str))
    return res


def run(pair: str = "digits", members: int = 5, seeds: int = 3, budget: str = "quick",
        workers: int | None = None, out: str | os.PathLike | None = None,
        data_dir: str | None = None, progress: bool = True) -> dict:
    """Run (or resume) the study on ``pair``; returns the result written to ensembles.json."""
    cfg = EnsemblesConfig(pair=pair, members=members, seeds=seeds, budget=budget,
                          workers=workers, out=None if out is None else str(out),
                          data_dir=data_dir)
    return run_config(cfg, progress)


def run_config(cfg: EnsemblesConfig, progress: bool = True) -> dict:
    from transferlab.ensemble import transfer_ensemble
    from transferlab.ensemble.members import pretrain_members
    from transferlab.metrics import plot_reliability

    t0 = time.perf_counter()
    b = get_budget(cfg.budget, cfg.pair)
    source, target = b.tasks(PAIRS[cfg.pair])
    out = Path(cfg.out) if cfg.out is not None else default_out(cfg.pair)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={str(out)!r} is a file: allowed is a folder (new or from an "
                        "earlier run, which is resumed); pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    order = design.strategies(b, cfg.members)
    shift = design.SHIFT.format(t=b.tiny_epochs)
    # M members + one more, the member added later (seed M)
    sources = pretrain_members(source, cfg.members + 1, out / "members", "convnet",
                               b.pretrain(), cfg.data_dir, progress, b.arch_kwargs())
    from transferlab.checkpoint import read_meta

    source_acc = [read_meta(p)["metrics"]["test_acc"] for p in sources]
    units, adds, reliability = {}, {}, None
    for seed in range(cfg.seeds):
        folder = out / f"replicate{seed}"
        res = transfer_ensemble(target, members=sources[: cfg.members],
                                strategies=list(order), train=b.train(), seed=seed,
                                db=str(out / DB_NAME), workers=cfg.workers,
                                data_dir=cfg.data_dir, out=str(folder), progress=progress)
        units[seed] = {r["strategy"]: {k: r[k] for k in METRICS} for r in res.rows}
        adds[seed] = _add(folder, sources[cfg.members], shift, progress)
        if reliability is None:
            reliability = {k: (res.probs[k].mean(0), res.labels)
                           for k in (design.BASELINE, shift, "shift-only",
                                     f"tiny:epochs={b.tiny_epochs}") if k in res.probs}
    rule, found = findings(units, adds, shift, design.BASELINE)
    files = {"database": str(out / DB_NAME), "result": str(out / "ensembles.json"),
             "figure": str(out / "metrics_vs_time.png"),
             "reliability": str(out / "reliability.png"), "report": str(out / "report.html")}
    title = f"Transfer learning for ensembles: {source} -> {target}, M = {cfg.members}"
    plot.draw_vs_time(units, list(order), files["figure"], title)
    plot_reliability(reliability, files["reliability"],
                     title="reliability of the ensemble mean (replicate 0)")
    result = {
        "study": STUDY, "strategies": aggregate(units, order),
        "units": {str(k): v for k, v in units.items()},
        "additions": {str(k): v for k, v in adds.items()},
        "findings_rule": rule, "findings": [f.to_dict() for f in found],
        "settings": {"pair": cfg.pair, "source": source, "target": target,
                     "members": cfg.members, "seeds": cfg.seeds, "budget": b.to_dict(),
                     "matched_epochs": design.matched_epochs(b, cfg.members),
                     "source_test_acc": source_acc, "workers": cfg.workers,
                     "wall_time_s": round(time.perf_counter() - t0, 1),
                     "shift_strategy": shift, "baseline": design.BASELINE},
        "provenance": provenance(), "files": files}
    images = [(files["figure"], "Metrics against compute time: one dot per replicate, a "
                                "cross at the mean of each strategy."),
              (files["reliability"], "Reliability diagrams: accuracy per confidence bin of "
                                     "the ensemble's mean prediction (15 bins).")]
    report.write_report(files["report"], result, images, title)
    from transferlab.report.outputs import json_safe

    write_text_atomic(files["result"], json.dumps(json_safe(result), indent=1, default=str,
                                                  allow_nan=False))
    return result


def summarize(result: dict) -> tuple[list[str], dict]:
    s = result["settings"]
    lines = [f"ensembles study {s['source']} -> {s['target']} (M = {s['members']}, "
             f"{s['seeds']} replicate(s)): {s['wall_time_s']:.0f} s"]
    for r in result["strategies"]:
        lines.append(f"  {r['strategy']:<24} {r['compute']:<9} acc {r['accuracy']:.4f} "
                     f"nll {r['nll']:.4f} ece {r['ece']:.4f} dis "
                     f"{(r['disagreement'] or 0):.4f} time {r['wall_time_s']:.2f}s")
    lines.append(result["findings_rule"])
    lines += [f"- {f['title']}: {f['text']}" for f in result["findings"]]
    lines.append(f"report: {result['files']['report']}")
    return lines, {"files": result["files"], "findings": result["findings"],
                   "strategies": result["strategies"]}
