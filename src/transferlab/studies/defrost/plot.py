"""The defrost study's figures: n* heatmap, accuracy-vs-depth curves, similarity profiles.

Rendered on matplotlib's Agg canvas (no pyplot state), so it works headless.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from transferlab.studies.defrost.curves import cell, optimum
from transferlab.studies.defrost.reps import METRICS
from transferlab.report.png import save_png  # noqa: F401 - shared PNG writer


def _short(level) -> str:
    text = str(level)
    return text if len(text) <= 18 else text[:17] + "…"


def heatmap(curves: dict, knob: str | None, num_blocks: int) -> Figure:
    """n* per (N, correlation): rows = levels, columns = sizes, colour = depth 0..L."""
    sizes, levels = curves["sizes"], curves["levels"]
    grid = np.full((len(levels), len(sizes)), np.nan)
    for i, lv in enumerate(levels):
        for j, n in enumerate(sizes):
            v = optimum(curves, n, lv)
            grid[i, j] = np.nan if v is None else v
    fig = Figure(figsize=(1.2 + 1.1 * len(sizes), 1.2 + 0.7 * len(levels)), dpi=110)
    ax = fig.add_subplot()
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=num_blocks, origin="lower",
                   aspect="auto")
    for i in range(len(levels)):
        for j in range(len(sizes)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{int(grid[i, j])}", ha="center", va="center",
                        color="white" if grid[i, j] < num_blocks / 2 else "black")
    ax.set_xticks(range(len(sizes)), [str(n) for n in sizes])
    ax.set_yticks(range(len(levels)), [_short(lv) for lv in levels])
    ax.set_xlabel("target size N")
    ax.set_ylabel(f"correlation ({knob})" if knob else "target")
    ax.set_title("optimal freeze depth n* (blocks frozen)", fontsize=10)
    fig.colorbar(im, ax=ax, label="n*")
    fig.tight_layout()
    return fig


def curves_figure(curves: dict, block_names: list[str]) -> Figure:
    """Test accuracy against n, one panel per level, one line per N (95% CI bars); scratch
    as a dashed line of the same colour, n* ringed."""
    levels, sizes, depths = curves["levels"], curves["sizes"], curves["depths"]
    fig = Figure(figsize=(4.2 * len(levels), 3.6), dpi=110)
    colours = [f"C{i}" for i in range(len(sizes))]
    for k, lv in enumerate(levels):
        ax = fig.add_subplot(1, len(levels), k + 1)
        for n, col in zip(sizes, colours):
            entries = [cell(curves, n, lv, dep) for dep in depths]
            xs = [dep for dep, e in zip(depths, entries) if e]
            ys = np.array([100 * e["mean"] for e in entries if e])
            err = np.array([0 if e["ci_low"] is None else 100 * (e["ci_high"] - e["ci_low"]) / 2
                            for e in entries if e])
            if not xs:
                continue
            ax.errorbar(xs, ys, yerr=err, color=col, marker="o", ms=3, capsize=2,
                        label=f"N={n}")
            best = optimum(curves, n, lv)
            if best in xs:
                ax.plot([best], [ys[xs.index(best)]], "o", ms=10, mfc="none", color=col)
            scr = cell(curves, n, lv, kind="scratch")
            if scr:
                ax.axhline(100 * scr["mean"], color=col, ls="--", lw=0.8)
        ax.set_xticks(depths, [str(dep) for dep in depths])
        ax.set_xlabel("n = blocks frozen (0 = fine-tune all; dashed: scratch)")
        ax.set_title(f"correlation {_short(lv)}", fontsize=10)
        if k == 0:
            ax.set_ylabel("test accuracy (%)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def similarity_figure(reps: list[dict], curves: dict, block_names: list[str]) -> Figure:
    """Per level: every metric against the block (source vs target scratch nets at the
    largest N); dotted: each metric's fall depth; red band: n* of that cell."""
    fig = Figure(figsize=(4.2 * max(1, len(reps)), 3.6), dpi=110)
    for k, r in enumerate(reps):
        ax = fig.add_subplot(1, max(1, len(reps)), k + 1)
        blocks = list(range(1, len(block_names) + 1))
        for i, m in enumerate(METRICS):
            means = [np.nan if v is None else v for v in r["metrics"][m]["mean"]]
            ax.plot([0] + blocks, [1.0] + means, marker="o", ms=3, color=f"C{i}",
                    label=m + (" (1-d/2)" if m == "procrustes" else ""))
            fall = r["metrics"][m]["fall_depth"]
            if fall is not None:
                ax.axvline(fall + 0.5, color=f"C{i}", ls=":", lw=0.8)
        best = optimum(curves, r["target_size"], r["correlation"])
        if best is not None:
            ax.axvspan(best - 0.15, best + 0.15, color="red", alpha=0.2, label=f"n* = {best}")
        ax.set_xticks([0] + blocks, ["in"] + block_names, fontsize=7)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"correlation {_short(r['correlation'])}, N={r['target_size']}",
                     fontsize=10)
        if k == 0:
            ax.set_ylabel("similarity, source vs target net")
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
