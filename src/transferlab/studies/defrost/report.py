"""The defrost study's HTML report: wording and tables on the shared report kit.

Sections: what was run, findings (with their tests), n* table and gains, figures, the
accuracy table per cell and depth (mean ± 95% CI half-width, seeds), representations
(fall depth beside n*), settings and provenance. Self-contained (``report.html``).
"""

from __future__ import annotations

import os

from transferlab.studies.defrost.curves import cell, optimum
from transferlab.studies.defrost.findings import fmt_p, pp
from transferlab.studies.defrost.reps import METRICS
from transferlab.report import html as kit


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _ms(e: dict | None) -> str:
    if not e:
        return "–"
    if e["ci_low"] is None:
        return f"{_pct(e['mean'])} ({e['n']})"
    return f"{_pct(e['mean'])} ± {100 * (e['ci_high'] - e['ci_low']) / 2:.1f} ({e['n']})"


def _gain(row: dict | None) -> str:
    if not row:
        return "–"
    return f"{pp(row['mean_diff'])}, Holm {fmt_p(row['p_holm'])}"


def optimal_table(result: dict) -> str:
    by_test = {(r["target_size"], r["correlation"]): r
               for r in result.get("optimal_by_test", [])}
    rows = []
    for g in result["gains"]:
        v = by_test.get((g["target_size"], g["correlation"]), {})
        rows.append({"N": g["target_size"], "correlation": g["correlation"],
                     "n* (validation)": g["depth"], "test acc. at n* (%)": _pct(g["mean"]),
                     "vs n = L": _gain(g["vs_full_freeze"]),
                     "vs scratch": _gain(g["vs_scratch"]),
                     "test-argmax depth (oracle)": v.get("depth", "–"),
                     "its test acc. (%)": _pct(v.get("mean"))})
    return kit.table(rows, left=("correlation",))


def accuracy_table(result: dict) -> str:
    depths = result["depths"]
    rows = []
    for n in result["sizes"]:
        for lv in result["levels"]:
            best = optimum(result, n, lv)
            r = {"N": n, "correlation": lv}
            for dep in depths:
                text = kit.esc(_ms(cell(result, n, lv, dep)))
                r[f"n={dep}"] = f"<b>{text}</b>" if dep == best else text
            r["scratch"] = kit.esc(_ms(cell(result, n, lv, kind="scratch")))
            rows.append(r)
    cols = ["N", "correlation"] + [f"n={d}" for d in depths] + ["scratch"]
    return kit.table(rows, columns=cols, left=("correlation",), raw=cols[2:])


def reps_table(result: dict) -> str:
    rows = []
    for r in result["representations"]:
        row = {"correlation": r["correlation"], "N": r["target_size"],
               "seeds": len(r["seeds"]),
               "n*": optimum(result, r["target_size"], r["correlation"])}
        for m in METRICS:
            means = r["metrics"][m]["mean"]
            curve = " ".join("–" if v is None else f"{v:.2f}" for v in means)
            row[m] = f"{curve} | falls after {r['metrics'][m]['fall_depth']}"
        rows.append(row)
    return kit.table(rows, left=("correlation", *METRICS))


def write_report(path: str | os.PathLike, result: dict, findings: list, rule: str,
                 images: list[tuple[bytes, str]], title: str) -> str:
    s = result["settings"]
    intro = kit.paragraph(
        f"Incremental defrosting (Gerace et al. 2023): a source network ({s['arch']}, L = "
        f"{s['num_blocks']} blocks: {', '.join(s['block_names'])}) is pretrained once per "
        f"seed; for every target size N and correlation level, freeze:n (the first n blocks "
        "frozen, the rest fine-tuned from their pretrained weights) is trained for every n in "
        f"{s['depths']}, next to scratch. {s['seeds']} seeds; {s['trials']} trials "
        f"({s['trials_failed']} failed); wall time {s['wall_time_s']:.0f} s.")
    items = []
    for f in findings:
        cls = {True: "yes", False: "no", None: "na"}[f.reproduced]
        word = {True: "reproduced", False: "not reproduced", None: "not decided"}[f.reproduced]
        items.append(f'<b>{kit.esc(f.title)}</b>: <span class="{cls}">{word}</span>. '
                     f"{kit.esc(f.text)}")
    head = [f"<p><b>{kit.esc(result['headline'])}</b></p>"] if result.get("headline") else []
    parts = [*head, kit.failures(result.get("trial_failures")), intro,
             kit.section("Findings", kit.paragraph(rule), kit.bullets(items, raw=True)),
             kit.section("Optimal depth n* per cell", kit.paragraph(
                 "Gains are paired across seeds (mean difference in percentage points, "
                 "Holm-corrected over the cells). n* is the depth the mean validation "
                 "accuracy picks; the test-argmax depth is an optimistic oracle, shown for "
                 "comparison and never used to choose."),
                 optimal_table(result)),
             kit.section("Figures", *[kit.figure(png, cap) for png, cap in images]),
             kit.section("Test accuracy per cell and depth", kit.paragraph(
                 "Mean ± half-width of the 95% t-interval, in %, (seeds); bold: n*."),
                 accuracy_table(result))]
    if result["representations"]:
        parts.append(kit.section("Representations", kit.paragraph(
            "Source network vs a network trained from scratch on the target (largest N), "
            "block i against block i on the same target test inputs; per block the mean "
            "over seeds, and the depth after which the similarity falls the most "
            "(0 = already at the first block), beside n*."), reps_table(result)))
    parts += [kit.section("Settings", kit.kv_table(s)),
              kit.provenance_section(result.get("provenance"))]
    return kit.write(path, kit.page(title, parts))
