"""Reproduce Yosinski et al. (2014), "How transferable are features in deep neural networks?"

>>> from transferlab.studies import yosinski
>>> curves = yosinski.run("digits", budget="quick", seeds=2, out="runs/demo")  # doctest: +SKIP
>>> curves["conditions"]["AnB"]["mean"]                                        # doctest: +SKIP

The classes are split into halves A and B; baseA and baseB (the built-in convnet, L = 7
blocks) are trained per seed; then for n = 1..L-1 the paper's conditions BnB, BnB+, AnB,
AnB+ and a random-features control are trained and tested on B, with baseB (scratch on B)
as the reference. Everything runs on the sweep engine into ``OUT/yosinski.sqlite``
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
from transferlab.studies import findings as findings_mod
from transferlab.studies import plot, report
from transferlab.studies.conditions import SPLITS, Design, design, short_name, sweep_specs
from transferlab.studies.curves import compute_curves, label_conditions, stats

__all__ = ["run", "DB_NAME", "default_out", "load_curves"]

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
    from transferlab.sweep import run_sweep

    frames = [run_sweep(spec, db, backend=backend, workers=workers, address=address,
                        progress=progress) for spec in sweep_specs(d)]
    frames = [f for f in frames if not f.empty]
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

    plan = plan_sweep(sweep_specs(d)[0])
    out = {}
    for name, task in (("baseA", d.task_a), ("baseB", d.task_b)):
        values, seeds = [], []
        for seed in d.seeds:
            path = source_path(db, plan.sources[name].pretrain_config(seed, plan.data_dir))
            try:
                acc = read_meta(path)["metrics"]["test_acc"]
            except (UserError, KeyError):  # not built (the study failed before it)
                continue
            values.append(float(acc))
            seeds.append(seed)
        mean, std = stats(values)
        out[name] = {"task": task, "mean": mean, "std": std, "n": len(values),
                     "values": values, "seeds": seeds}
    return out


def run(dataset: str = "digits", split: str = "random", classes_a=None, classes_b=None,
        seeds: int | list[int] = 3, budget: str = "quick", backend: str = "local",
        workers: int | None = None, out: str | os.PathLike | None = None,
        data_dir: str | None = None, split_seed: int = 0, compare=None,
        depths: list[int] | None = None, address: str | None = None,
        progress: bool = True) -> dict:
    """Run the study (or resume it) and write its outputs; returns the curves.

    Args:
        dataset: "digits", "mnist", "cifar10", or an image folder / zip / npz path.
        split: "random" (seeded by ``split_seed``) or "dissimilar" (CIFAR-10: A = 6 animals,
            B = 4 vehicles; other datasets: give ``classes_a`` and ``classes_b``).
        classes_a, classes_b: explicit halves (indices, ranges or names), both or neither.
        seeds: number of seeds (0..N-1) or a list of seeds.
        budget: "quick" (CPU), "standard" or "full" (GPU); see ``studies.budgets``.
        backend, workers, address: the sweep engine's ("local" or "ray").
        out: output folder (default ``runs/yosinski-<dataset>-<split>``).
        compare: the other split's curves.json (or its dict); default: the sibling
            default folder's, when it exists.
        depths: the n values (default 1..L-1); fewer make a quicker, partial study.
    Returns: the curves dict also written to ``OUT/curves.json``: ``conditions[name]``
        with per-depth ``mean``, ``std`` (ddof 1), ``n``, ``values``, ``seeds``; ``baseB``;
        ``classes_a``/``classes_b``; ``settings``; ``provenance``; ``findings``; ``files``.
    """
    t0 = time.perf_counter()
    d = design(dataset, split, classes_a, classes_b, split_seed, seeds, budget, depths,
               data_dir)
    out = Path(out) if out is not None else default_out(dataset, split)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out={str(out)!r} is a file: allowed is a folder (new or from an "
                        "earlier run, which is resumed); pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    other = _find_compare(compare, d, out)
    df = _run_sweeps(d, out / DB_NAME, backend, workers, address, progress)
    curves = compute_curves(label_conditions(df), depths=d.depths)
    curves["base_networks"] = _base_networks(d, out / DB_NAME)
    wall = time.perf_counter() - t0
    n_failed = int((df["status"] != "done").sum())
    curves.update(
        study=STUDY, block_names=d.block_names, classes_a=d.classes_a, classes_b=d.classes_b,
        settings={**d.settings(), "backend": backend, "workers": workers,
                  "trials": len(df), "trials_failed": n_failed,
                  "trial_time_s": round(float(pd.to_numeric(df["duration_s"]).sum()), 1),
                  "wall_time_s": round(wall, 1), "database": str((out / DB_NAME).resolve()),
                  "compared_with": other["_path"] if other else None},
        provenance=provenance())
    rule, found = findings_mod.findings(curves, other)
    curves["findings_rule"] = rule
    curves["findings"] = [f.to_dict() for f in found]
    title = (f"How transferable are features? {d.name}, {d.split} split "
             f"({len(d.classes_a)} vs {len(d.classes_b)} classes)")
    files = {"database": str(out / DB_NAME), "curves": str(out / "curves.json"),
             "figure": str(out / "yosinski.png"), "report": str(out / "report.html")}
    images = [(plot.save_png(plot.draw(curves, title), files["figure"]),
               "Top-1 test accuracy on B against n, the number of blocks copied from the "
               "source (a dot per seed, lines through the means, dashed: baseB).")]
    if other is not None:
        files["comparison"] = str(out / "compare.png")
        images.append((plot.save_png(plot.draw_comparison(curves, other), files["comparison"]),
                       "AnB relative to its own baseB, random vs dissimilar split."))
    curves["files"] = files
    write_text_atomic(files["curves"], json.dumps(curves, indent=1, default=str,
                                                  allow_nan=False))
    report.write_report(files["report"], curves, found, rule, images, title)
    return curves
