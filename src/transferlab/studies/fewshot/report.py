"""The few-shot study's HTML report: wording and tables on the shared report kit.

Sections: what was run, findings (each with its paired tests), the accuracy table (mean ±
95% CI half-width per protocol and k), figures, pairwise comparisons, weight changes,
every episode's value, settings and provenance. Self-contained (``transferlab.report.html``).
"""

from __future__ import annotations

import os

from transferlab.studies.fewshot.cells import fmt_cell, table_rows
from transferlab.studies.fewshot.findings import RULE, Finding, fmt_p
from transferlab.report import html as kit


def _num(v, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def accuracy_table(result: dict) -> str:
    shots = result["settings"]["shots"]
    rows = []
    for r in table_rows(result["cells"], result["settings"]["protocols"], shots):
        rows.append({"protocol": r["protocol"], **{f"k={k}": fmt_cell(r[k]) for k in shots}})
    return kit.table(rows, columns=["protocol"] + [f"k={k}" for k in shots], left=("protocol",))


def _test_rows(tests: list[dict]) -> str:
    rows = []
    for t in tests:
        label = t.get("comparison") or f"{t.get('a')} − {t.get('b')}"
        rows.append({"comparison": label, "k": t.get("shots", ""), "n": t["n"],
                     "mean diff (pp)": "—" if t["mean_diff"] is None
                     else f"{100 * t['mean_diff']:+.1f}",
                     "95% CI (pp)": "—" if t["ci_low"] is None
                     else f"[{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}]",
                     "p": fmt_p(t["p"]), "p (Wilcoxon)": fmt_p(t.get("p_wilcoxon")),
                     "p (Holm)": fmt_p(t["p_holm"]),
                     "verdict": "higher" if t["higher"] else "lower" if t["lower"] else "n.s."})
    return kit.table(rows, left=("comparison", "verdict")) if rows else ""


def findings_section(found: list[Finding]) -> str:
    items = []
    for f in found:
        body = f"<b>{kit.esc(f.title)}.</b> {kit.esc(f.text)}"
        if f.tests:
            body += kit.details(f"{len(f.tests)} paired tests", _test_rows(f.tests))
        items.append(body)
    return kit.section("Findings", kit.paragraph(RULE), kit.bullets(items, raw=True))


def weights_table(rows: list[dict], k: int) -> str:
    shown = [{"protocol": r["protocol"], "block": r["block"], "kind": r["kind"],
              "params": r["n_params"], "rel. change (mean)": _num(r["relative_change"]),
              "95% CI": "—" if r["ci_low"] is None else
              f"[{_num(r['ci_low'], 3)}, {_num(r['ci_high'], 3)}]",
              "cos(ΔW) between episodes": _num(r["cosine_between_episodes"], 3), "n": r["n"]}
             for r in rows if r["shots"] == k]
    return kit.table(shown, left=("protocol", "block", "kind"))


def values_table(cells: list[dict]) -> str:
    rows = [{"protocol": c["protocol"], "k": c["shots"], "seed": u[0], "episode": u[1],
             "test acc. (%)": f"{100 * v:.2f}"}
            for c in cells for u, v in zip(c["units"], c["values"])]
    return kit.table(rows, left=("protocol",))


def write_report(path: str | os.PathLike, result: dict, found: list[Finding],
                 images: list[tuple[bytes, str]], title: str) -> str:
    s = result["settings"]
    intro = (f"Source: {s['source_kind']} {s['source']}. Target: {s['target']} "
             f"({s['ways']} ways: {', '.join(s['target_classes'])}). k = "
             f"{', '.join(map(str, s['shots']))} labelled examples per class in total "
             f"({s['validation']}); {s['episodes']} episodes (support sets) per k, "
             f"{len(s['seeds'])} training seed(s); every protocol sees the same support sets. "
             f"Budget {s['budget']}; {s['trials']} trials ({s['trials_failed']} failed), "
             f"wall time {s['wall_time_s']:.0f} s. Test accuracy is on the target's whole "
             "test split; nothing is selected on it.")
    parts = [kit.failures(result.get("trial_failures")), kit.paragraph(intro),
             findings_section(found),
             kit.section("Test accuracy (%), mean ± 95% CI half-width (n episodes)",
                         accuracy_table(result))]
    parts.append(kit.section("Figures", *(kit.figure(png, cap) for png, cap in images)))
    parts.append(kit.section("Pairwise comparisons (Holm within each k)",
                             kit.details(f"{len(result['pairwise'])} paired tests",
                                         _test_rows(result["pairwise"]))))
    if result["weight_change"]:
        k = max(r["shots"] for r in result["weight_change"])
        parts.append(kit.section(
            "Weight change", kit.paragraph(
                "Relative change ||W − W0|| / ||W0|| per block and kind, W0 = the weights the "
                "episode started from (pretrained blocks: the source; the new head: its own "
                "seeded initialisation), mean over episodes with a 95% t-interval; cos(ΔW) is "
                "the mean cosine similarity of W − W0 between pairs of episodes (1: every "
                "support set moved the weights the same way)."),
            kit.details(f"table at k = {k}", weights_table(result["weight_change"], k))))
    parts.append(kit.section("Every episode", kit.details("values", values_table(result["cells"]))))
    parts.append(kit.section("Settings", kit.kv_table(s)))
    parts.append(kit.provenance_section(result.get("provenance") or {}))
    return kit.write(path, kit.page(title, parts))
