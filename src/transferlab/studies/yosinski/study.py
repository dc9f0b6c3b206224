"""Reproduce Yosinski et al. (2014), "How transferable are features in deep neural networks?"

>>> from transferlab.studies import yosinski
>>> curves = yosinski.run("digits", budget="quick", seeds=2, out="runs/demo")  # doctest: +SKIP
>>> curves["conditions"]["AnB"]["mean"]                                        # doctest: +SKIP

The classes are split into halves A and B; baseA and baseB (the built-in convnet, L = 7
blocks) are trained per seed; then for n = 1..L-1 the paper's conditions BnB, BnB+, AnB,
AnB+ and a random-features control are trained and tested on B, with baseB (scratch on B)
as the reference. A random split is repeated for several split seeds (the budget's, or
``split_seeds``) and everything averages over (split seed, seed) units; the findings are
paired tests across those units. Everything runs on the sweep engine into ``OUT/yosinski.sqlite``
(resumable: a rerun only trains what is missing), and the folder receives ``curves.json``,
``yosinski.png`` and a self-contained ``report.html``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd

from transferlab._atomic import write_text_atomic
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.sweep.failures import check_trials
from transferlab.studies.kit.stats import mean_std, t_interval
from transferlab.studies.yosinski import findings as findings_mod
from transferlab.studies.yosinski import plot, report
from transferlab.studies.yosinski.conditions import (SPLITS, Design, design, short_name,
                                                     sweep_specs)
from transferlab.studies.yosinski.config import YosinskiConfig
from transferlab.studies.yosinski.curves import compute_curves, label_conditions

__all__ = ["run", "run_config", "summarize", "DB_NAME", "default_out", "load_curves"]

DB_NAME = "yosinski.sqlite"
STUDY = "yosinski"


def default_out(dataset: str, split: str) -> Path:
    """``runs/yosinski-<dataset>-<split>``."""
    return Path("runs") / f"yosinski-{short_name(dataset)}-{split}"


def load_curves(path: str | os.PathLike) -> dict:
    """Read a study's ``curves.json`` (or the folder holding it); ``UserError`` if it is not."""
    path = Path(path)
    if path.is_dir():
        path = path / "curves.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--compare={str(path)!r} does not exist: allowed is the curves.json of "
                        "an earlier yosinski study; run that study first") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"--compare={str(path)!r} is not JSON ({exc.msg}): allowed is a "
                        "yosinski curves.json") from None
    if not isinstance(data, dict) or data.get("study") != STUDY or "conditions" not in data:
        raise UserError(f"--compare={str(path)!r} is not a yosinski curves.json; pass the file "
                        "that `transferlab study yosinski` wrote")
    data["_path"] = str(path)
    return data


def _check_compare(other: dict, d: Design) -> None:
    s = other.get("settings", {})
    if s.get("dataset_name") != d.name:
        raise UserError(f"--compare={other['_path']!r} is a study of {s.get('dataset_name')!r}: "
                        f"allowed is one of {d.name!r} with the other split; pass that one")
    if s.get("split") == d.split:
        raise UserError(f"--compare={other['_path']!r} is also a {d.split}-split result: allowed "
                        "is the other split's curves.json")


def _find_compare(compare, d: Design, out: Path) -> dict | None:
    """The other split's curves: as passed, or from the sibling default folder if present."""
    if compare is not None:
        other = compare if isinstance(compare, dict) else load_curves(compare)
        other.setdefault("_path", "<dict>")
        _check_compare(other, d)
        return other
    other_split = next(s for s in SPLITS if s != d.split)
    sibling = out.resolve().parent / default_out(d.dataset, other_split).name / "curves.json"
    if not sibling.is_file():
        return None
    try:
        other = load_curves(sibling)
        _check_compare(other, d)
    except UserError:
        return None  # an unrelated study in a folder of that name: ignore it
    return other


def _run_sweeps(d: Design, db: Path, backend: str, workers: int | None,
                address: str | None, progress: bool) -> pd.DataFrame:
    """Every split's sweeps into ``db``; rows get a ``split_seed`` column (by target task)."""
    from transferlab.sweep import run_sweep

    frames = []
    for split in d.splits:
        for spec in sweep_specs(d, split):
            f = run_sweep(spec, db, backend=backend, workers=workers, address=address,
                          progress=progress)
            if not f.empty:
                frames.append(f.assign(split_seed=pd.Series([split.split_seed] * len(f),
                                                            index=f.index, dtype=object)))
    if not frames:
        raise UserError("the study produced no trials; check --depths and --seeds")
    return pd.concat(frames, ignore_index=True)


def _base_networks(d: Design, db: Path) -> dict:
    """Test accuracy of baseA (on A) and baseB (on B) from their pretraining runs.

    The sweep keeps each pretrained source with its metrics in its cache; the sweep's own
    planner gives the exact source configs, hence their paths.
    """
    from transferlab.checkpoint import read_meta
    from transferlab.sweep import plan_sweep
    from transferlab.sweep.cache import source_path

    out = {name: {"tasks": [], "values": [], "seeds": [], "split_seeds": []}
           for name in ("baseA", "baseB")}
    for split in d.splits:
        plan = plan_sweep(sweep_specs(d, split)[0])
        for name, task in (("baseA", split.task_a), ("baseB", split.task_b)):
            out[name]["tasks"].append(task)
            for seed in d.seeds:
                path = source_path(db, plan.sources[name].pretrain_config(seed, plan.data_dir))
                try:
                    acc = read_meta(path)["metrics"]["test_acc"]
                except (UserError, KeyError):  # not built (the study failed before it)
                    continue
                out[name]["values"].append(float(acc))
                out[name]["seeds"].append(seed)
                out[name]["split_seeds"].append(split.split_seed)
    for cell in out.values():
        cell["mean"], cell["std"] = mean_std(cell["values"])
        ci = t_interval(cell["values"])
        cell["ci_low"], cell["ci_high"] = ci if ci else (None, None)
        cell["n"] = len(cell["values"])
    return out


def run(dataset: str = "digits", split: str = "random", classes_a=None, classes_b=None,
        seeds: int | list[int] = 3, budget: str = "quick", backend: str = "local",
        workers: int | None = None, out: str | os.PathLike | None = None,
        data_dir: str | None = None, split_seeds: list[int] | None = None, compare=None,
        depths: list[int] | None = None, address: str | None = None,
        progress: bool = True, split_seed: int | None = None) -> dict:
    """Run the study (or resume it) and write its outputs; returns the curves.

    Args:
        dataset: "digits", "mnist", "cifar10", or an image folder / zip / npz path.
        split: "random" (one split per split seed) or "dissimilar" (CIFAR-10: A = 6
            animals, B = 4 vehicles; other datasets: give ``classes_a`` and ``classes_b``).
        classes_a, classes_b: explicit halves (indices, ranges or names), both or neither.
        seeds: number of seeds (0..N-1) or a list of seeds, per split.
        budget: "quick" (CPU), "standard" or "full" (GPU); see ``budgets``.
        backend, workers, address: the sweep engine's ("local" or "ray").
        out: output folder (default ``runs/yosinski-<dataset>-<split>``).
        split_seeds: the random split's seeds (default: the budget's, quick 0,1; standard
            and full 0,1,2); ``split_seed=k`` (the older form) means ``split_seeds=[k]``.
        compare: the other split's curves.json (or its dict); default: the sibling
            default folder's, when it exists.
        depths: the n values (default 1..L-1); fewer make a quicker, partial study.
    Returns: the curves dict also written to ``OUT/curves.json``: ``conditions[name]``
        with per-depth ``mean``, ``std`` (ddof 1), ``ci_low``/``ci_high`` (95% t), ``n``,
        ``values``, ``seeds``, ``split_seeds``; ``baseB``; ``splits`` (halves per split
        seed; ``classes_a``/``classes_b`` are the first split's); ``settings``;
        ``provenance``; ``findings`` (with their tests); ``files``.
    """
    if split_seed is not None:
        if split_seeds is not None:
            raise UserError("split_seed and split_seeds were both given: pass only "
                            "split_seeds (a list)")
        split_seeds = [split_seed]
    cfg = YosinskiConfig(dataset=dataset, split=split, classes_a=classes_a,
                         classes_b=classes_b, split_seeds=split_seeds, seeds=seeds,
                         budget=budget, depths=depths, backend=backend, workers=workers,
                         address=address, out=None if out is None else str(out),
                         compare=compare, data_dir=data_dir)
    return run_config(cfg, progress=progress)


def run_config(cfg: YosinskiConfig, progress: bool = True) -> dict:
    """``run`` from a ``YosinskiConfig`` (what ``transferlab study yosinski`` calls)."""
    t0 = time.perf_counter()
    d = design(cfg.dataset, cfg.split, cfg.classes_a, cfg.classes_b, cfg.split_seeds,
               cfg.seeds, cfg.budget, cfg.depths, cfg.data_dir)
    out = Path(cfg.out) if cfg.out is not None else default_out(cfg.dataset, cfg.split)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={str(out)!r} is a file: allowed is a folder (new or from an "
                        "earlier run, which is resumed); pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    other = _find_compare(cfg.compare, d, out)
    df = _run_sweeps(d, out / DB_NAME, cfg.backend, cfg.workers, cfg.address, progress)
    # every trial failed: TrialsFailed naming the causes, before anything reads metrics
    failures = check_trials(df, f"study {STUDY}")
    curves = compute_curves(label_conditions(df), depths=d.depths)
    curves["trial_failures"] = failures
    curves["base_networks"] = _base_networks(d, out / DB_NAME)
    wall = time.perf_counter() - t0
    n_failed = int((df["status"] != "done").sum())
    first = d.splits[0]
    curves.update(
        study=STUDY, block_names=d.block_names, classes_a=first.classes_a,
        classes_b=first.classes_b, splits=[s.to_dict() for s in d.splits],
        settings={**d.settings(), "backend": cfg.backend, "workers": cfg.workers,
                  "trials": len(df), "trials_failed": n_failed,
                  "trial_time_s": round(float(pd.to_numeric(df["duration_s"]).sum()), 1),
                  "wall_time_s": round(wall, 1), "database": str((out / DB_NAME).resolve()),
                  "compared_with": other["_path"] if other else None},
        provenance=provenance())
    rule, found = findings_mod.findings(curves, other)
    curves["findings_rule"] = rule
    curves["findings"] = [f.to_dict() for f in found]
    halves = f"{len(first.classes_a)} vs {len(first.classes_b)} classes"
    if len(d.splits) > 1:
        halves += f", {len(d.splits)} random splits"
    title = f"How transferable are features? {d.name}, {d.split} split ({halves})"
    files = {"database": str(out / DB_NAME), "curves": str(out / "curves.json"),
             "figure": str(out / "yosinski.png"), "report": str(out / "report.html")}
    images = [(plot.save_png(plot.draw(curves, title), files["figure"]),
               "Top-1 test accuracy on B against n, the number of blocks copied from the "
               "source (a dot per unit (split seed, seed), lines through the means, dashed: "
               "baseB; below: means with 95% confidence intervals).")]
    if other is not None:
        files["comparison"] = str(out / "compare.png")
        images.append((plot.save_png(plot.draw_comparison(curves, other), files["comparison"]),
                       "AnB relative to its own baseB, random vs dissimilar split."))
    curves["files"] = files
    write_text_atomic(files["curves"], json.dumps(curves, indent=1, default=str,
                                                  allow_nan=False))
    report.write_report(files["report"], curves, found, rule, images, title)
    return curves


def summarize(curves: dict) -> tuple[list[str], dict]:
    """The CLI's lines and its ``--json`` summary of a finished study."""
    files, s = curves["files"], curves["settings"]
    lines = [f"yosinski study on {s['dataset_name']} ({s['split']} split, "
             f"{len(curves['splits'])} split(s)): {s['trials']} trials "
             f"({s['trials_failed']} failed), {s['wall_time_s']:.0f} s"]
    for sp in curves["splits"]:
        tag = "" if sp["split_seed"] is None else f" (split seed {sp['split_seed']})"
        lines.append(f"  A{tag}: {', '.join(sp['classes_a'])}\n  B{tag}: "
                     f"{', '.join(sp['classes_b'])}")
    lines.append(curves["findings_rule"])
    lines += [f"- {f['title']}: {f['text']}" for f in curves["findings"]]
    lines.append(f"report: {files['report']}")
    summary = {"files": files, "findings": curves["findings"],
               "findings_rule": curves["findings_rule"], "baseB": curves["baseB"]["mean"],
               "means": {k: v["mean"] for k, v in curves["conditions"].items()},
               "split_seeds": s["split_seeds"], "wall_time_s": s["wall_time_s"],
               "trials": s["trials"], "trials_failed": s["trials_failed"]}
    return lines, summary
