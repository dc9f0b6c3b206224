"""Results table -> cells: test accuracy per (protocol, k) over its units, and paired tests.

A *unit* is a (seed, episode) pair: the same pair is the same support set (and the same
training seed) for every protocol, and for one protocol the support set of episode e at k is
nested in the one at a larger k (data/sampling.py), so differences are taken per unit and
tested paired (``kit.stats``). Cells hold the mean, the sample std, the 95% t-interval, n,
the values and their units; mean / std / CI are None where undefined (n < 2 for the CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from transferlab.errors import UserError
from transferlab.studies.kit.stats import mean_std, paired_family, t_interval

NEEDED = ("protocol", "per_class", "episode", "seed", "test_acc")


def _ok(df: pd.DataFrame, metric: str) -> pd.Series:
    ok = pd.Series(np.isfinite(pd.to_numeric(df[metric], errors="coerce").astype(float)),
                   index=df.index)
    if "status" in df.columns:
        ok &= df["status"].fillna("done").eq("done")
    return ok


def compute_cells(df: pd.DataFrame, protocols: Sequence[str], shots: Sequence[int],
                  metric: str = "test_acc") -> list[dict]:
    """One dict per (protocol, k), protocols in the given order, k ascending.

    ``df``: one row per trial with columns protocol (canonical name), per_class, episode,
    seed, ``metric`` and optionally status. Returns dicts with protocol, shots, mean, std,
    ci_low, ci_high, n, n_failed, values, units ([seed, episode] per value, sorted).
    """
    missing = [c for c in NEEDED if c not in df.columns and c != "test_acc"] + \
        ([metric] if metric not in df.columns else [])
    if missing:
        raise UserError(f"results table lacks columns {missing}: allowed is a table from the "
                        "few-shot study's sweeps")
    name = df["protocol_spec"] if "protocol_spec" in df.columns else df["protocol"]
    out = []
    for p in protocols:
        for k in shots:
            rows = df[(name == p) & (pd.to_numeric(df["per_class"]) == k)]
            ok = _ok(rows, metric)
            good = rows[ok]
            order = sorted(range(len(good)), key=lambda i: (int(good["seed"].iloc[i]),
                                                            int(good["episode"].iloc[i])))
            values = [float(good[metric].iloc[i]) for i in order]
            units = [[int(good["seed"].iloc[i]), int(good["episode"].iloc[i])] for i in order]
            mean, std = mean_std(values)
            ci = t_interval(values)
            out.append({"protocol": p, "shots": int(k), "mean": mean, "std": std,
                        "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                        "n": len(values), "n_failed": int((~ok).sum()), "values": values,
                        "units": units})
    return out


def by_unit(cells: list[dict], protocol: str, k: int) -> dict[tuple[int, int], float]:
    """{(seed, episode): value} of one cell ({} if it is not there)."""
    for c in cells:
        if c["protocol"] == protocol and c["shots"] == k:
            return {tuple(u): v for u, v in zip(c["units"], c["values"])}
    return {}


def cell(cells: list[dict], protocol: str, k: int) -> dict | None:
    return next((c for c in cells if c["protocol"] == protocol and c["shots"] == k), None)


def pairwise(cells: list[dict], protocols: Sequence[str], shots: Sequence[int]) -> list[dict]:
    """Every pair of protocols at every k: paired t-test (and Wilcoxon) of a - b over the
    shared units, Holm-corrected within each k (the family "which protocols differ at k")."""
    rows = []
    for k in shots:
        groups = [((a, b), by_unit(cells, a, k), by_unit(cells, b, k))
                  for a, b in combinations(protocols, 2)]
        for r in paired_family(groups, label="pair"):
            a, b = r.pop("pair")
            rows.append({"shots": int(k), "a": a, "b": b, **r})
    return rows


def table_rows(cells: list[dict], protocols: Sequence[str], shots: Sequence[int]) -> list[dict]:
    """One row per protocol: ``{"protocol": p, k: cell ...}`` for the summary table."""
    return [{"protocol": p, **{k: cell(cells, p, k) for k in shots}} for p in protocols]


def fmt_cell(c: dict | None) -> str:
    """"71.2 ± 3.4 (n=5)": mean ± half-width of the 95% CI, in % (— where unmeasured)."""
    if not c or c["mean"] is None:
        return "—"
    if c["ci_low"] is None:
        return f"{100 * c['mean']:.1f} (n={c['n']})"
    half = (c["ci_high"] - c["ci_low"]) / 2
    return f"{100 * c['mean']:.1f} ± {100 * half:.1f} (n={c['n']})"
