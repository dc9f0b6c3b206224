"""Bar plot of a ``compare_weights`` table (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from transferlab._atomic import atomic_path
from transferlab.analysis.weights import KINDS


def plot_weight_changes(df: pd.DataFrame, path: str | os.PathLike, title: str = "") -> None:
    """Two panels of grouped bars, blocks on the x axis and one bar per parameter kind:
    relative change ||W - W0|| / ||W0|| (top) and cosine(W, W0) (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Block names and titles come from the user: '$' or '\\' stay text, never mathtext.
    with plt.rc_context({"text.parse_math": False}):
        blocks = list(dict.fromkeys(df["block"]))
        kinds = [k for k in KINDS if k in set(df["kind"])] + sorted(set(df["kind"]) - set(KINDS))
        width = 0.8 / max(len(kinds), 1)
        xs = np.arange(len(blocks))
        fig, axes = plt.subplots(2, 1, figsize=(2.0 + 0.9 * len(blocks), 6.5), sharex=True,
                                 layout="constrained")
        try:
            for col, ax, label in (("rel_change", axes[0], "relative change ||W-W0||/||W0||"),
                                   ("cosine", axes[1], "cosine(W, W0)")):
                for k, kind in enumerate(kinds):
                    sub = df[df["kind"] == kind].set_index("block")[col]
                    vals = [sub.get(b, np.nan) for b in blocks]  # NaN: kind absent or undefined
                    ax.bar(xs + (k - (len(kinds) - 1) / 2) * width, vals, width, label=kind)
                ax.set_ylabel(label)
                ax.grid(axis="y", alpha=0.3)
            axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
            axes[1].set_xticks(xs, labels=blocks, rotation=45, ha="right")
            axes[1].set_xlabel("block")
            fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
            axes[0].set_title(title or "weight change per block")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=120)
        finally:
            plt.close(fig)
