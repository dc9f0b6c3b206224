"""Heatmap of a block-by-block similarity matrix (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from transferlab._atomic import atomic_path
from transferlab.similarity import DISTANCES

_RANGES = {"procrustes": (0.0, 2.0)}  # everything else here is a similarity in [0, 1]


def plot_similarity(matrix: np.ndarray, names_a: Sequence[str], names_b: Sequence[str],
                    metric: str, path: str | os.PathLike, label_a: str = "model A",
                    label_b: str = "model B", title: str | None = None) -> None:
    """Write a PNG heatmap of ``matrix`` (len(names_a), len(names_b)), values in each cell.

    Rows are model A's blocks (top to bottom, first block at the top), columns model B's.
    Distances (``procrustes``) use a reversed colour map so that "similar" has one colour.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; also safe on machines without a display
    import matplotlib.pyplot as plt

    # Labels come from the user (block names, titles): '$' or '\\' must stay text, never
    # mathtext (which raises on unbalanced '$').
    with plt.rc_context({"text.parse_math": False}):
        matrix = np.asarray(matrix, dtype=float)
        vmin, vmax = _RANGES.get(metric, (0.0, 1.0))
        cmap = "viridis_r" if metric in DISTANCES else "viridis"
        rows, cols = matrix.shape
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * max(cols, 3), 1.0 + 0.6 * max(rows, 3)),
                               layout="constrained")
        try:
            im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            norm = im.norm
            for i in range(rows):
                for j in range(cols):
                    v = matrix[i, j]
                    # dark text on the light end of the colour map, light text on the dark end
                    shade = norm(v) if np.isfinite(v) else 0.0
                    light_cell = shade > 0.5 if cmap == "viridis" else shade < 0.5
                    ax.text(j, i, "nan" if not np.isfinite(v) else f"{v:.2f}", ha="center",
                            va="center", fontsize=8, color="black" if light_cell else "white")
            ax.set_xticks(range(cols), labels=list(names_b), rotation=45, ha="right")
            ax.set_yticks(range(rows), labels=list(names_a))
            ax.set_xlabel(f"{label_b} blocks")
            ax.set_ylabel(f"{label_a} blocks")
            ax.set_title(title or metric)
            better = "lower" if metric in DISTANCES else "higher"
            fig.colorbar(im, ax=ax, label=f"{metric} ({better} = more similar)")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=120)
        finally:
            plt.close(fig)
