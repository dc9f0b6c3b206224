"""The study's figures, in the manner of Yosinski et al. (2014), Figure 2.

Top panel: a dot per unit (split seed, seed), a line through the means of each condition,
baseB's units at n = 0 and its mean as a horizontal reference line. Bottom panel: the means
with 95% confidence intervals (t) as error bars, zoomed on the four transfer conditions and
baseB (random features often fall far below them and would squash the gaps the paper is
about). Rendered with matplotlib's Agg canvas (no display, no global pyplot state), so it
works in workers and on headless machines.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from transferlab.report.png import save_png  # noqa: F401 - the study's run writes PNGs
from transferlab.studies.yosinski.curves import CONDITIONS, REFERENCE

# Colours and markers follow the paper: B-sourced blue, A-sourced red, "+" variants lighter.
STYLE = {
    "BnB": {"color": "#1f3f99", "marker": "o"},
    "BnB+": {"color": "#6fa8dc", "marker": "o"},
    "AnB": {"color": "#a61c1c", "marker": "D"},
    "AnB+": {"color": "#ea9999", "marker": "D"},
    "random": {"color": "#6b6b6b", "marker": "^"},
}
LABELS = {"BnB": "BnB", "BnB+": "BnB⁺", "AnB": "AnB", "AnB+": "AnB⁺",
          "random": "random features (frozen)"}
_JITTER = {name: (i - (len(CONDITIONS) - 1) / 2) * 0.06 for i, name in enumerate(CONDITIONS)}


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _xticks(ax, curves: dict) -> None:
    names = curves.get("block_names") or []
    ticks = [0] + list(curves["depths"])
    labels = ["0\nbaseB"] + [f"{d}\n{names[d - 1]}" if d <= len(names) else str(d)
                             for d in curves["depths"]]
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_xlim(-0.5, max(ticks) + 0.5)


def _half_ci(lows, highs) -> np.ndarray:
    """Error-bar half-widths of 95% t-intervals (0 where undefined: one unit)."""
    lo, hi = _nan(lows), _nan(highs)
    return np.nan_to_num((hi - lo) / 2)


def _baseline(ax, curves: dict) -> None:
    base = curves[REFERENCE]
    if base["mean"] is None:
        return
    ax.axhline(base["mean"], color="black", lw=1, ls="--", zorder=1,
               label=f"baseB (mean {100 * base['mean']:.1f}%)")
    if base.get("ci_low") is not None:
        ax.axhspan(base["ci_low"], base["ci_high"], color="black", alpha=0.07, lw=0,
                   zorder=0)


def _zoom(ax, curves: dict) -> None:
    """Limit ``ax`` to the transfer conditions and baseB; note random points left out."""
    vals = []
    for name in ("BnB", "BnB+", "AnB", "AnB+"):
        c = curves["conditions"].get(name)
        if c:
            m, s = _nan(c["mean"]), _half_ci(c["ci_low"], c["ci_high"])
            vals += list(m - s) + list(m + s)
    base = curves[REFERENCE]
    if base["mean"] is not None:
        vals += [base.get("ci_low") or base["mean"], base.get("ci_high") or base["mean"]]
    vals = [v for v in vals if np.isfinite(v)]
    if not vals:
        return
    lo, hi = min(vals), max(vals)
    pad = max(0.1 * (hi - lo), 0.005)
    ax.set_ylim(lo - pad, hi + pad)
    rnd = curves["conditions"].get("random")
    if rnd:
        off = [d for d, m in zip(rnd["depth"], rnd["mean"]) if m is not None and
               not lo - pad <= m <= hi + pad]
        if off:
            ax.text(0.01, 0.03, "random features off this scale at n = "
                    + ", ".join(map(str, off)) + " (see top panel)", transform=ax.transAxes,
                    fontsize=8, color=STYLE["random"]["color"])


def draw(curves: dict, title: str | None = None) -> Figure:
    """The two-panel figure for ``curves`` (see ``compute_curves``)."""
    fig = Figure(figsize=(8, 8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    base = curves[REFERENCE]
    top.scatter(np.zeros(len(base["values"])), base["values"], s=36, facecolor="white",
                edgecolor="black", zorder=4, label=None)
    for ax in (top, bottom):
        _baseline(ax, curves)
    for name in CONDITIONS:
        c = curves["conditions"].get(name)
        if c is None or not any(c["n"]):
            continue
        st = STYLE[name]
        xs = np.array(c["depth"], dtype=float) + _JITTER[name]
        for x, vals in zip(xs, c["values"]):
            top.scatter(np.full(len(vals), x), vals, s=22, color=st["color"],
                        marker=st["marker"], alpha=0.75, zorder=3, lw=0)
        mean = _nan(c["mean"])
        top.plot(xs, mean, color=st["color"], lw=1.6, zorder=2, label=LABELS[name])
        half = _half_ci(c["ci_low"], c["ci_high"])
        bottom.errorbar(xs, mean, yerr=half, color=st["color"], marker=st["marker"], ms=5,
                        lw=1.4, capsize=3, label=LABELS[name])
    top.set_ylabel("top-1 test accuracy on B")
    bottom.set_ylabel("mean, 95% CI (zoom)")
    _zoom(bottom, curves)
    bottom.set_xlabel("n: layers (blocks) transferred from the source")
    _xticks(bottom, curves)
    for ax in (top, bottom):
        ax.grid(alpha=0.25)
    top.legend(loc="lower left", fontsize=8, ncol=2)
    if title:
        top.set_title(title, fontsize=10, parse_math=False)  # a path with "$" stays text
    return fig


def draw_comparison(curves: dict, other: dict) -> Figure:
    """AnB relative to its own baseB for the random and the dissimilar split (Figure 3 top)."""
    fig = Figure(figsize=(7, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for c in (curves, other):
        base = c[REFERENCE]["mean"]
        anb = c["conditions"]["AnB"]
        if not base:
            continue
        rel = _nan(anb["mean"]) / base
        split = c.get("settings", {}).get("split", "?")
        colour = "#a61c1c" if split == "dissimilar" else "#1f3f99"
        ax.plot(anb["depth"], rel, marker="D", color=colour, label=f"AnB / baseB, {split} split")
        for d, vals in zip(anb["depth"], anb["values"]):
            ax.scatter(np.full(len(vals), d), np.array(vals) / base, s=14, color=colour,
                       alpha=0.5, lw=0)
    ax.axhline(1.0, color="black", lw=1, ls="--")
    ax.set_xlabel("n: layers transferred")
    ax.set_ylabel("accuracy relative to baseB")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8)
    return fig
