"""The guide study's figures (matplotlib Agg, no global state)."""

from __future__ import annotations

import re

import numpy as np
from matplotlib.figure import Figure

from transferlab.report.png import save_png

__all__ = ["draw_grid", "draw_lr", "save_png"]


def draw_lr(fit_cases: list[dict]) -> Figure:
    """Fine-tuning accuracy against lr_mult, one line per case (mean, 95% CI)."""
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    for c in fit_cases:
        pts = []
        for label, cell in c["cells"].items():
            m = re.fullmatch(r"finetune \(lr_mult ([0-9.e-]+)\)", label)
            if m and cell["mean"] is not None:
                lo = cell["ci_low"] if cell["ci_low"] is not None else cell["mean"]
                hi = cell["ci_high"] if cell["ci_high"] is not None else cell["mean"]
                pts.append((float(m.group(1)), cell["mean"], cell["mean"] - lo,
                            hi - cell["mean"]))
        if pts:
            pts.sort()
            x, y, lo, hi = map(np.asarray, zip(*pts))
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=c["scenario"])
    ax.set_xscale("log")
    ax.set(xlabel="lr_mult (pretrained blocks' lr / head lr)", ylabel="test accuracy",
           title="fine-tuning: a smaller learning rate?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw_grid(rows: list[dict]) -> Figure:
    """Bars per scenario: measured winner, guide's advice, transferlab's advice."""
    fig = Figure(figsize=(7, 3.4))
    ax = fig.subplots()
    x = np.arange(len(rows))
    for i, (key, name) in enumerate([("winner_acc", "measured winner"),
                                     ("guide_acc", "guide's advice"),
                                     ("transferlab_acc", "transferlab's advice")]):
        ax.bar(x + (i - 1) * 0.27, [r[key] or 0 for r in rows], 0.27, label=name)
    ax.set_xticks(x, [r["scenario"] for r in rows], fontsize=8)
    lows = [r[k] for r in rows for k in ("winner_acc", "guide_acc", "transferlab_acc")
            if r[k] is not None]
    ax.set_ylim(max(0.0, min(lows, default=0) - 0.1), 1.0)
    ax.set(ylabel="test accuracy (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
