"""Figures: accuracy / NLL / ECE / disagreement against compute time, per strategy."""

from __future__ import annotations

import os

import numpy as np

from transferlab._atomic import atomic_path

PANELS = (("accuracy", "ensemble accuracy"), ("nll", "NLL"), ("ece", "ECE"),
          ("disagreement", "disagreement"))


def draw_vs_time(units: dict, order: list[str], path: str | os.PathLike, title: str) -> str:
    """Four panels; one colour per strategy: a dot per replicate, a cross at the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"text.parse_math": False}):
        fig, axes = plt.subplots(2, 2, figsize=(10, 7), layout="constrained")
        try:
            colours = plt.get_cmap("tab10")
            for ax, (metric, label) in zip(axes.flat, PANELS):
                for i, name in enumerate(order):
                    pts = [(rows[name]["wall_time_s"], rows[name][metric])
                           for rows in units.values()
                           if name in rows and rows[name].get(metric) is not None]
                    if not pts:
                        continue
                    x, y = np.array(pts, dtype=float).T
                    ax.scatter(x, y, color=colours(i % 10), s=14, alpha=0.5)
                    ax.scatter([x.mean()], [y.mean()], color=colours(i % 10), marker="X",
                               s=70, label=name)
                ax.set_xscale("log")
                ax.set_xlabel("compute time (s, serial sum over the strategy's trials)")
                ax.set_ylabel(label)
                ax.grid(alpha=0.3)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
            fig.suptitle(title)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=110)
        finally:
            plt.close(fig)
    return str(path)
