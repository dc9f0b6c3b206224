"""``--out DIR``: ``advice.json``, the figures and a one-page ``report.html``."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure

from transferlab._atomic import write_text_atomic
from transferlab.report import html as kit
from transferlab.report.outputs import json_safe
from transferlab.report.png import save_png


def draw_depths(adv) -> Figure:
    """Probe validation accuracy and LogME against depth (the evidence of similarity)."""
    ev = adv.evidence
    d = [e.depth for e in ev.per_depth]
    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(d, [e.probe_val_acc for e in ev.per_depth], "o-", color="#1f3f99")
    ax1.axhline(ev.chance, ls=":", color="#777", label="chance")
    ax1.plot([ev.best_depth], [ev.best_acc], "*", ms=14, color="#a61c1c", label="best depth")
    ax1.set(xlabel="depth (blocks)", ylabel="probe accuracy (validation)",
            title="linear probe per depth")
    ax1.legend(fontsize=8)
    ax2.plot(d, [e.logme for e in ev.per_depth], "s-", color="#38761d")
    ax2.set(xlabel="depth (blocks)", ylabel="LogME (train)", title="LogME per depth")
    for ax in (ax1, ax2):
        ax.set_xticks(d, [e.block for e in ev.per_depth], rotation=45, fontsize=8)
    fig.tight_layout()
    return fig


def draw_race(adv) -> Figure:
    """Validation accuracy of each raced candidate at each rung (the successive halving)."""
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    for v in adv.verified:
        pts = [(r["epochs"] or 0, r["val_acc"]) for r in v["rungs"] if r["val_acc"] is not None]
        if not pts:
            continue
        if v["epochs"] is None:  # a solver: one result, no epochs
            ax.axhline(pts[0][1], ls="--", lw=1, label=f"{v['label']} (L-BFGS)",
                       color=None)
        else:
            ax.plot(*zip(*pts), "o-", label=v["label"])
    ax.set(xlabel="epochs of the rung", ylabel="validation accuracy (mean over seeds)",
           title=f"race: winner {adv.race['winner']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fmt(x) -> str:
    return "" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def write_outputs(adv, out: Path) -> dict:
    """Write advice.json, depths.png (race.png with --verify) and report.html."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / "advice.json"), "report": str(out / "report.html"),
             "depths": str(out / "depths.png")}
    images = [(save_png(draw_depths(adv), files["depths"]),
               "Linear-probe validation accuracy and LogME against depth.")]
    if adv.verified:
        files["race"] = str(out / "race.png")
        images.append((save_png(draw_race(adv), files["race"]),
                       "The race: validation accuracy per rung (dashed: L-BFGS probes)."))
    adv.files = files
    data = adv.to_dict()
    write_text_atomic(files["json"], json.dumps(json_safe(data), indent=1, default=str,
                                                allow_nan=False))
    rec = adv.recommendation
    ev = adv.evidence
    parts = [
        kit.failures((adv.race or {}).get("trial_failures")),  # some race trials failed
        kit.section("Advice", kit.paragraph(
            f"Source {adv.source} -> task {adv.task}: {adv.size} and {adv.similarity}. "
            f"Recommended: {rec.label}" + (f"; runner-up: {adv.runner_up.label}"
                                           if adv.runner_up else "") + "."),
            kit.paragraph(adv.explanation)),
        kit.section("Candidates in order", kit.table(
            [{"rank": i + 1, **c.to_dict()} for i, c in
             enumerate([rec, *adv.alternatives])],
            ["rank", "label", "protocol", "lr", "lr_mult", "epochs"], left=["label",
                                                                              "protocol"])),
        kit.section("Evidence", kit.table(
            [{"depth": e.depth, "block": e.block, "dim": e.dim,
              "probe_val_acc": f"{e.probe_val_acc:.4f}", "logme": f"{e.logme:.4f}",
              "l2": e.probe_l2} for e in ev.per_depth],
            left=["block"]),
            kit.kv_table({"examples per class": ev.examples_per_class,
                          "train / val": f"{ev.n_train} / {ev.n_val}",
                          "retained": round(ev.retained, 4), "LEEP": ev.leep,
                          "evidence time (s)": round(ev.time_s, 2),
                          "thresholds": adv.thresholds.to_dict()}),
            *[kit.figure(png, cap) for png, cap in images[:1]]),
    ]
    if adv.verified:
        parts.append(kit.section(
            "Verified (successive halving, validation decides)",
            kit.paragraph(f"Winner: {adv.race['winner']}; "
                          + ("the race OVERTURNED the advice."
                             if adv.race["overturned"] else "the race confirmed the advice.")
                          + f" Trial time {adv.race['trial_time_s']:.1f} s."),
            kit.table([{k: _fmt(v[k]) for k in ("label", "epochs", "val_acc", "test_acc",
                                                  "wall_time_s", "eliminated_at")}
                       for v in adv.verified], left=["label"]),
            kit.figure(*images[1])))
    parts.append(kit.provenance_section(data["provenance"]))
    kit.write(files["report"], kit.page(f"transferlab advise: {adv.task}", parts))
    return files
