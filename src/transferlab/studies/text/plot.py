"""The text study's figure: accuracy per condition and regime (95% CI), and wall time."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure


def figure(stats: dict, regimes: list[str]) -> bytes:
    """Two panels: test accuracy vs regime per condition (error bars: 95% t-interval) and
    the mean wall time per trial (log scale). PNG bytes."""
    conds = []
    for r in regimes:
        for c in stats.get(r, {}):
            if c not in conds:
                conds.append(c)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    x = np.arange(len(regimes))
    width = 0.8 / max(len(conds), 1)
    for i, c in enumerate(conds):
        mean = [stats.get(r, {}).get(c, {}).get("mean", np.nan) for r in regimes]
        lo = [((stats.get(r, {}).get(c) or {}).get("ci") or [np.nan, np.nan])[0]
              for r in regimes]
        hi = [((stats.get(r, {}).get(c) or {}).get("ci") or [np.nan, np.nan])[1]
              for r in regimes]
        mean = np.array(mean, dtype=float)
        err = np.nan_to_num(np.vstack([mean - np.array(lo, float), np.array(hi, float) - mean]))
        ax.errorbar(x + (i - (len(conds) - 1) / 2) * width * 0.5, mean, yerr=err, marker="o",
                    capsize=3, label=c)
        wall = [stats.get(r, {}).get(c, {}).get("wall_s", np.nan) for r in regimes]
        bx.bar(x + (i - (len(conds) - 1) / 2) * width, wall, width, label=c)
    for a in (ax, bx):
        a.set_xticks(x, regimes)
        a.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy (mean, 95% CI over episodes / seeds)")
    bx.set_ylabel("wall time per trial (s)")
    bx.set_yscale("log")
    bx.set_title("cost")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
