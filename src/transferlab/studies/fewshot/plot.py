"""The study's figures: accuracy against k with 95% CI bands, and weight-change heatmaps.

Rendered on matplotlib's Agg canvas (no display, no global pyplot state).
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from transferlab.report.png import save_png  # noqa: F401 - the study's run writes its PNGs
from transferlab.studies.fewshot.cells import cell
from transferlab.studies.fewshot.weightchange import heatmap_matrix

HEAT_KINDS = ("conv weight", "linear weight", "bn gamma", "bn beta", "bn running_mean",
              "bn running_var")


def _style(protocol: str) -> dict:
    return {"ls": "--" if protocol.endswith("frozen-stats") else "-",
            "marker": "s" if protocol.endswith("frozen-stats") else "o"}


def draw_accuracy(cells: list[dict], protocols: list[str], shots: list[int],
                  title: str) -> Figure:
    """Mean test accuracy vs k per protocol; band = 95% t-interval; dots = episodes."""
    fig = Figure(figsize=(8.5, 5.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["tab10"]
    for i, p in enumerate(protocols):
        colour = cmap(i % 10)
        cs = [cell(cells, p, k) for k in shots]
        mean = np.array([np.nan if c is None or c["mean"] is None else c["mean"] for c in cs])
        lo = np.array([np.nan if c is None or c["ci_low"] is None else c["ci_low"] for c in cs])
        hi = np.array([np.nan if c is None or c["ci_high"] is None else c["ci_high"] for c in cs])
        ax.plot(shots, mean, color=colour, label=p, **_style(p))
        ax.fill_between(shots, lo, hi, color=colour, alpha=0.12, lw=0)
        for k, c in zip(shots, cs):
            if c:
                ax.scatter([k] * len(c["values"]), c["values"], color=colour, s=6, alpha=0.35)
    ax.set_xscale("log")
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.minorticks_off()
    ax.set_xlabel("k (labelled examples per class)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def draw_heatmaps(rows: list[dict], protocols: list[str], blocks: list[str], k: int) -> Figure:
    """One panel per kind: protocols x blocks (head last), colour = mean relative change
    ||ΔW|| / ||W0|| on a log scale; 0 (untouched) is white with "0", grey: no such tensor."""
    blocks = list(blocks) + ["head"]
    mats = {kind: heatmap_matrix(rows, protocols, blocks, kind, k) for kind in HEAT_KINDS}
    positive = np.concatenate([m[np.isfinite(m) & (m > 0)].ravel() for m in mats.values()])
    vmin = max(float(positive.min()) if positive.size else 1e-6, 1e-6)
    vmax = max(float(positive.max()) if positive.size else 1.0, vmin * 10)
    fig = Figure(figsize=(12, 1.2 + 0.42 * len(protocols) * 2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3, sharey=True)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    image = None
    for ax, kind in zip(axes.ravel(), HEAT_KINDS):
        m = mats[kind]
        shown = np.where(m > 0, m, np.nan)
        ax.set_facecolor("#dddddd")
        image = ax.imshow(shown, norm=norm, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(m):
            if v == 0:
                ax.add_patch(_white(j, i))
                ax.text(j, i, "0", ha="center", va="center", fontsize=6)
        ax.set_title(kind, fontsize=9)
        ax.set_xticks(range(len(blocks)), blocks, rotation=60, fontsize=7)
        ax.set_yticks(range(len(protocols)), protocols, fontsize=7)
    fig.suptitle(f"Relative change ||ΔW||/||W0|| per block (k = {k}, mean over episodes; "
                 "head vs its own initialisation)", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    return fig


def _white(x: int, y: int):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, color="white")
