"""The Yosinski curves: mean and 95% CI of top-1 accuracy on B per condition and depth n.

A results table (one row per trial, as ``transferlab.sweep`` returns it) is labelled with
the paper's condition names, then reduced to, for every condition and every n, the values
of every unit — a (split seed, seed) pair: the same pair means the same halves and the same
base networks in every condition, which is what the paired tests of ``findings`` use — their
mean, sample standard deviation (ddof = 1) and 95% t-interval. The reference ``baseB`` (the
base network trained on B) has no depth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from transferlab.errors import UserError
from transferlab.studies.kit.stats import mean_std, t_interval

# Curves over n, in the order of the paper's Figure 2 (plus the random-features control).
CONDITIONS = ("BnB", "BnB+", "AnB", "AnB+", "random")
REFERENCE = "baseB"
# How each condition is made: (source name in the study's sweep specs, protocol family).
RECIPES: dict[str, tuple[str, str]] = {
    "BnB": ("baseB", "reinit"),
    "BnB+": ("baseB", "reinit+"),
    "AnB": ("baseA", "reinit"),
    "AnB+": ("baseA", "reinit+"),
    "random": ("random", "reinit"),
    REFERENCE: ("baseB", "scratch"),
}
DESCRIPTIONS = {
    "BnB": "first n blocks of baseB copied and frozen, the rest re-initialised and trained on B",
    "BnB+": "as BnB, but the copied blocks are fine-tuned",
    "AnB": "first n blocks of baseA copied and frozen, the rest re-initialised and trained on B",
    "AnB+": "as AnB, but the copied blocks are fine-tuned",
    "random": "first n blocks random (untrained) and frozen, the rest trained on B",
    REFERENCE: "the base network trained from scratch on B with the same budget",
}


def _family(protocol: str) -> str:
    """``"reinit+:3" -> "reinit+"``; ``"scratch" -> "scratch"``."""
    return str(protocol).split(":", 1)[0]


def label_conditions(df: pd.DataFrame) -> pd.DataFrame:
    """Add a ``condition`` column from ``source`` and ``protocol`` (rows of other sources or
    protocols get ``None``). ``df`` needs columns source, protocol; returns a copy."""
    missing = {"source", "protocol"} - set(df.columns)
    if missing:
        raise UserError(f"results table lacks columns {sorted(missing)}: allowed is a table "
                        "from transferlab.sweep (run_sweep or load_results)")
    lookup = {recipe: name for name, recipe in RECIPES.items()}
    out = df.copy()
    out["condition"] = pd.Series([lookup.get((s, _family(p))) for s, p in
                                  zip(out["source"], out["protocol"])], index=out.index,
                                 dtype=object)
    return out


def _ok_mask(df: pd.DataFrame, metric: str) -> pd.Series:
    """Trials that count: finished (status 'done' if present) with a finite metric."""
    ok = pd.Series(np.isfinite(pd.to_numeric(df[metric], errors="coerce").astype(float)),
                   index=df.index)
    if "status" in df.columns:
        ok &= df["status"].fillna("done").eq("done")
    return ok


def stats(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample std) with None where undefined (no value; std of one value)."""
    return mean_std(values)


def _cell(rows: pd.DataFrame, metric: str) -> dict:
    ok = _ok_mask(rows, metric)
    good = rows[ok]
    split = (good["split_seed"] if "split_seed" in good.columns
             else pd.Series([None] * len(good), index=good.index, dtype=object))
    order = sorted(range(len(good)), key=lambda i: (_sortable(split.iloc[i]),
                                                    int(good["seed"].iloc[i])))
    values = [float(good[metric].iloc[i]) for i in order]
    mean, std = mean_std(values)
    ci = t_interval(values)
    return {"mean": mean, "std": std, "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None, "n": len(values), "n_failed": int((~ok).sum()),
            "values": values, "seeds": [int(good["seed"].iloc[i]) for i in order],
            "split_seeds": [_split_value(split.iloc[i]) for i in order]}


def _split_value(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _sortable(v) -> int:
    s = _split_value(v)
    return -1 if s is None else s


FIELDS = ("mean", "std", "ci_low", "ci_high", "n", "n_failed", "values", "seeds",
          "split_seeds")


def compute_curves(df: pd.DataFrame, depths: Sequence[int] | None = None,
                   metric: str = "test_acc") -> dict:
    """Reduce a labelled results table to the study's curves.

    Args:
        df: one row per trial with columns condition (see ``label_conditions``), depth,
            seed, ``metric`` and optionally split_seed and status ('done' | 'failed').
            Failed trials and non-finite metrics are counted in ``n_failed`` but not in
            the statistics.
        depths: the n values to report (default: every depth found).
    Returns:
        ``{"metric", "depths": [n...], "conditions": {name: {"depth": [n...], "mean": [...],
        "std": [...], "ci_low": [...], "ci_high": [...], "n": [...], "n_failed": [...],
        "values": [[per unit]...], "seeds": [[...]...], "split_seeds": [[...]...]}},
        "baseB": {the same fields, one value each}}``; lists are aligned with ``depths``,
        units (split seed, seed) are sorted; mean/std/CI are None where undefined.
    """
    needed = {"condition", "depth", "seed", metric}
    if needed - set(df.columns):
        raise UserError(f"results table lacks columns {sorted(needed - set(df.columns))}: "
                        "allowed is a table labelled by label_conditions()")
    curves_df = df[df["condition"].isin(CONDITIONS)]
    if depths is None:
        depths = sorted({int(d) for d in curves_df["depth"].dropna()})
    depths = [int(d) for d in depths]
    conditions = {}
    for name in CONDITIONS:
        rows = curves_df[curves_df["condition"] == name]
        cells = [_cell(rows[rows["depth"] == d], metric) for d in depths]
        conditions[name] = {"depth": list(depths),
                            **{k: [c[k] for c in cells] for k in FIELDS}}
    base = _cell(df[df["condition"] == REFERENCE], metric)
    return {"metric": metric, "depths": list(depths), "conditions": conditions,
            REFERENCE: base}


def unit_values(curves: dict, condition: str, depth: int | None = None
                ) -> dict[tuple[int, int], float]:
    """{(split seed, seed): value} of ``condition`` at ``depth`` (``REFERENCE``: no depth);
    {} if not measured. A split seed of None (one fixed split) counts as -1."""
    if condition == REFERENCE:
        cell = curves[REFERENCE]
        return {(_sortable(sp), s): v for sp, s, v in
                zip(cell.get("split_seeds") or [None] * len(cell["seeds"]), cell["seeds"],
                    cell["values"])}
    cond = curves["conditions"].get(condition)
    if not cond or depth not in cond["depth"]:
        return {}
    i = cond["depth"].index(depth)
    splits = (cond.get("split_seeds") or [[None] * len(x) for x in cond["seeds"]])[i]
    return {(_sortable(sp), s): v for sp, s, v in zip(splits, cond["seeds"][i],
                                                        cond["values"][i])}


def table_rows(curves: dict) -> list[dict]:
    """One dict per depth: ``{"depth": n, name: (mean, std, n) ...}``, for reports."""
    rows = []
    for i, d in enumerate(curves["depths"]):
        row: dict = {"depth": d}
        for name, c in curves["conditions"].items():
            row[name] = (c["mean"][i], c["std"][i], c["n"][i])
        rows.append(row)
    return rows
