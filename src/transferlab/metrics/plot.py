"""Reliability diagram (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import os

from transferlab._atomic import atomic_path
from transferlab.metrics.calibration import ece, reliability_bins


def plot_reliability(curves: dict[str, tuple], path: str | os.PathLike, n_bins: int = 15,
                     title: str = "reliability diagram") -> None:
    """One panel per entry of ``curves`` (label -> (probs (N, C), labels (N,))): accuracy per
    confidence bin as bars against the diagonal (perfect calibration), the gap shaded, and
    the ECE in the panel title. Written atomically to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(curves), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    with plt.rc_context({"text.parse_math": False}):
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False,
                                 layout="constrained")
        try:
            for ax in axes.flat[len(curves):]:
                ax.set_visible(False)
            for ax, (label, (probs, labels)) in zip(axes.flat, curves.items()):
                b = reliability_bins(probs, labels, n_bins)
                width = (b["upper"] - b["lower"]).numpy()
                left = b["lower"].numpy()
                used = b["count"].numpy() > 0
                ax.bar(left[used], b["accuracy"].numpy()[used], width[used], align="edge",
                       edgecolor="black", lw=0.5, label="accuracy")
                ax.bar(left[used], (b["confidence"] - b["accuracy"]).numpy()[used],
                       width[used], bottom=b["accuracy"].numpy()[used], align="edge",
                       color="red", alpha=0.3, label="gap")
                ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
                ax.set_xlim(0, 1)
                ax.set_ylim(0, 1)
                ax.set_title(f"{label}\nECE {ece(probs, labels, n_bins):.3f}", fontsize=9)
                ax.set_xlabel("confidence")
                ax.set_ylabel("accuracy")
            fig.suptitle(title)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        finally:
            plt.close(fig)
