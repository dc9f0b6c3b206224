"""Defrost curves: accuracy against freeze depth per cell (target size N, correlation).

A results table (one row per trial, as ``transferlab.sweep`` returns it) becomes, for every
cell and depth n, the per-seed test accuracies of ``freeze:n`` (and ``reinit:n``), their mean,
sample std (ddof 1) and 95% t-interval, plus ``scratch``. The optimal depth n* of a cell is
the depth with the highest mean VALIDATION accuracy over seeds (ties go to the deeper,
cheaper depth); its mean test accuracy is reported beside it, never used to choose (an
argmax over test means would be a winner's curse: the gain it reports is biased upwards).
Per seed, ``seed_optimal`` is that seed's own argmax of validation accuracy, the unit value
of the findings' tests on n*. A cell whose trials have no validation accuracy has no n*.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.errors import UserError
from transferlab.studies.defrost.design import Design
from transferlab.studies.kit.stats import mean_std, t_interval


def _family(protocol: str) -> str:
    return str(protocol).split(":", 1)[0]


def unit_table(df: pd.DataFrame, d: Design) -> dict:
    """{(N, level, family, depth): {seed: (test_acc, val_acc)}} of the finished trials;
    depth is None for scratch."""
    lookup = d.cell_of_task()
    out: dict = {}
    for row in df.to_dict("records"):
        if row.get("status") != "done" or row.get("task") not in lookup:
            continue
        seed, n, level = lookup[row["task"]]
        fam = _family(row["protocol"])
        depth = None if fam == "scratch" else int(row["depth"])
        val = row.get("val_acc")
        out.setdefault((n, level, fam, depth), {})[int(seed)] = (
            float(row["test_acc"]), None if val is None or pd.isna(val) else float(val))
    return out


def _stats(by_seed: dict) -> dict:
    seeds = sorted(by_seed)
    values = [by_seed[s][0] for s in seeds]
    vals = [by_seed[s][1] for s in seeds if by_seed[s][1] is not None]
    mean, std = mean_std(values)
    ci = t_interval(values)
    return {"mean": mean, "std": std, "n": len(values), "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None, "values": values, "seeds": seeds,
            "val_mean": float(np.mean(vals)) if vals else None}


def _argmax(depths: list[int], means: list[float | None]) -> int | None:
    """The depth of the highest mean; ties (to 1e-12) go to the deeper depth."""
    best, best_v = None, -np.inf
    for dep, v in zip(depths, means):
        if v is not None and v >= best_v - 1e-12:
            best, best_v = dep, max(v, best_v)
    return best


def compute_curves(df: pd.DataFrame, d: Design) -> dict:
    """The study's numbers (see the module docstring); keys: cells, scratch, reinit,
    optimal (n* by validation, with its test ``mean`` and ``val_mean``), seed_optimal,
    depths, sizes, levels."""
    table = unit_table(df, d)
    if not table:
        raise UserError("the study has no finished trials; see the sweep's errors with "
                        "`transferlab results DB --failed`")
    cells, scratch, reinit, optimal, seed_opt = [], [], [], [], []
    for n, level in d.cells:
        means, vmeans = [], []
        for dep in d.depths:
            by_seed = table.get((n, level, "freeze", dep), {})
            st = _stats(by_seed) if by_seed else None
            means.append(st["mean"] if st else None)
            vmeans.append(st["val_mean"] if st else None)
            if st:
                cells.append({"target_size": n, "correlation": level, "depth": dep, **st})
            if d.reinit and (r := table.get((n, level, "reinit", dep))):
                reinit.append({"target_size": n, "correlation": level, "depth": dep,
                               **_stats(r)})
        if (s := table.get((n, level, "scratch", None))):
            scratch.append({"target_size": n, "correlation": level, **_stats(s)})
        # n* is chosen on validation only; the test mean at n* is read off afterwards.
        best = _argmax(d.depths, vmeans) if all(v is not None for v in vmeans) else None
        if best is not None:
            i = d.depths.index(best)
            optimal.append({"target_size": n, "correlation": level, "depth": best,
                            "mean": means[i], "val_mean": vmeans[i]})
        for seed in d.seeds:
            accs = [table.get((n, level, "freeze", dep), {}).get(seed) for dep in d.depths]
            if all(a is not None and a[1] is not None for a in accs):
                seed_opt.append({"target_size": n, "correlation": level, "seed": seed,
                                 "depth": _argmax(d.depths, [a[1] for a in accs])})
    return {"cells": cells, "scratch": scratch, "reinit": reinit, "optimal": optimal,
            "seed_optimal": seed_opt, "depths": d.depths, "sizes": d.sizes,
            "levels": d.levels}


def cell(curves: dict, n: int, level, depth: int | None = None, kind: str = "cells"
         ) -> dict | None:
    """The entry of ``curves[kind]`` at (N, level[, depth])."""
    for c in curves[kind]:
        if c["target_size"] == n and c["correlation"] == level and (
                depth is None or c.get("depth") == depth):
            return c
    return None


def by_seed(entry: dict | None) -> dict[int, float]:
    """{seed: value} of a cells/scratch entry (empty for None)."""
    return dict(zip(entry["seeds"], entry["values"])) if entry else {}


def seed_optimum(curves: dict, n: int, level) -> dict[int, int]:
    """{seed: that seed's n*} of one cell."""
    return {r["seed"]: r["depth"] for r in curves["seed_optimal"]
            if r["target_size"] == n and r["correlation"] == level}


def optimum(curves: dict, n: int, level) -> int | None:
    for r in curves["optimal"]:
        if r["target_size"] == n and r["correlation"] == level:
            return r["depth"]
    return None
