"""The Yosinski study's HTML report: its wording and tables, on the shared report kit.

Sections: introduction and halves, findings (each with its paired tests), figures, the
results table (mean ± 95% CI half-width per point), base networks, every unit's value,
settings and provenance. Self-contained (see ``transferlab.report.html``).
"""

from __future__ import annotations

import os

from transferlab.report import html as kit
from transferlab.studies.yosinski.curves import CONDITIONS, DESCRIPTIONS, REFERENCE
from transferlab.studies.yosinski.findings import Finding, fmt_p


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _cell(cell: dict, i: int | None = None) -> str:
    """"81.00 ± 2.48 (4)": mean ± half-width of the 95% t-interval, in %, (units)."""
    get = (lambda k: cell[k]) if i is None else (lambda k: cell[k][i])
    mean, lo, hi, n = get("mean"), get("ci_low"), get("ci_high"), get("n")
    if mean is None:
        return "–"
    if lo is None:
        return f"{_pct(mean)} <small>({n})</small>"
    return f"{_pct(mean)} ± {_pct((hi - lo) / 2)} <small>({n})</small>"


def results_table(curves: dict) -> str:
    """Mean ± 95% CI (units) of top-1 test accuracy on B, in percent, per n and condition."""
    names = curves.get("block_names") or []
    head = "".join(f"<th>{kit.esc(c)}</th>" for c in CONDITIONS)
    rows = [f'<tr><td class="l">0 (baseB)</td><td class="l" colspan="{len(CONDITIONS)}">'
            f"baseB {_cell(curves[REFERENCE])}: the reference line for every n</td></tr>"]
    for i, d in enumerate(curves["depths"]):
        label = f"{d} ({names[d - 1]})" if d <= len(names) else str(d)
        cells = "".join(f"<td>{_cell(curves['conditions'][c], i)}</td>" for c in CONDITIONS)
        rows.append(f'<tr><td class="l">{kit.esc(label)}</td>{cells}</tr>')
    return (f'<table><tr><th class="l">n (last block copied)</th>{head}</tr>'
            + "".join(rows) + "</table>")


def values_table(curves: dict) -> str:
    """Every unit's value, for checking the means by hand."""
    rows = []

    def add(name, depth, cell_splits, seeds, values):
        for sp, s, v in zip(cell_splits or [None] * len(seeds), seeds, values):
            rows.append({"condition": name, "n": "–" if depth is None else depth,
                         "split seed": "–" if sp is None else sp, "seed": s,
                         "test acc. (%)": _pct(v)})

    base = curves[REFERENCE]
    add(REFERENCE, None, base.get("split_seeds"), base["seeds"], base["values"])
    for c in CONDITIONS:
        cond = curves["conditions"][c]
        for i, d in enumerate(cond["depth"]):
            add(c, d, (cond.get("split_seeds") or [None] * len(cond["depth"]))[i],
                cond["seeds"][i], cond["values"][i])
    return kit.table(rows, left=("condition",))


def bases_paragraph(curves: dict) -> str:
    """The base networks' own test accuracy (from their pretraining runs)."""
    bases = curves.get("base_networks") or {}
    parts = []
    for name, half in (("baseA", "A"), ("baseB", "B")):
        b = bases.get(name)
        if b and b["mean"] is not None:
            parts.append(f"{name} reaches {_cell(b)} % on {half}")
    if not parts:
        return ""
    return ("<p>Base networks (their own pretraining runs; test accuracy, mean ± 95% CI "
            f"(units)): {'; '.join(parts)}. The baseB line in the figure and table comes "
            "from separate <code>scratch</code> trials on B with the same budget.</p>")


def tests_table(f: Finding) -> str:
    """The tests a finding rests on: per depth, the mean difference, its CI and the p's."""
    if not f.tests:
        return ""

    def signed(v):
        return "–" if v is None else f"{100 * v:+.2f}"

    rows = [{"n": r["depth"], "units": r["n"], "diff": signed(r["mean_diff"]),
             "ci": "–" if r["ci_low"] is None else
             f"[{signed(r['ci_low'])}, {signed(r['ci_high'])}]",
             "p": fmt_p(r["p"]), "holm": fmt_p(r["p_holm"]),
             "wilcoxon": "–" if r.get("p_wilcoxon") is None else fmt_p(r["p_wilcoxon"]),
             "sig": "yes" if r["higher"] or r["lower"] else "no"} for r in f.tests]
    headers = ["n", "units", f"{f.comparison} (pp)", "95% CI (pp)", "p", "p (Holm)",
               "p (Wilcoxon)", "counts"]
    return kit.details(f"tests: {f.comparison}", kit.table(
        rows, ["n", "units", "diff", "ci", "p", "holm", "wilcoxon", "sig"], headers))


def _finding_item(f: Finding) -> str:
    badge = {True: '<span class="yes">reproduces</span>',
             False: '<span class="no">does not reproduce</span>',
             None: '<span class="na">not decided</span>'}[f.reproduced]
    return f"<b>{kit.esc(f.title)}</b> — {badge}. {kit.esc(f.text)}{tests_table(f)}"


def _splits(curves: dict) -> str:
    splits = curves.get("splits") or [{"split_seed": None, "classes_a": curves.get(
        "classes_a", []), "classes_b": curves.get("classes_b", [])}]
    rows = [{"split seed": "–" if s["split_seed"] is None else s["split_seed"],
             "A": f"{len(s['classes_a'])}: {', '.join(map(str, s['classes_a']))}",
             "B": f"{len(s['classes_b'])}: {', '.join(map(str, s['classes_b']))}"}
            for s in splits]
    what = ("Random halves, one per split seed; every curve averages over the split seeds "
            "and seeds, and tests pair the units (split seed, seed)."
            if len(splits) > 1 else "One pair of halves.")
    return kit.paragraph(what) + kit.table(rows, headers=["split seed", "half A (classes)",
                                                          "half B (classes)"],
                                           left=("A", "B"))


def render(curves: dict, findings: list[Finding], rule: str, images: list[tuple[bytes, str]],
           title: str) -> str:
    """The report as one HTML string. ``images``: (PNG bytes, caption) pairs."""
    s = curves.get("settings", {})
    n_splits = len(curves.get("splits") or [None])
    intro = (f"<p>A reproduction of Yosinski et al. (2014), <i>How transferable are features "
             f"in deep neural networks?</i>, with transferlab's convnet "
             f"({len(curves.get('block_names', []))} transferable blocks), on "
             f"{kit.esc(s.get('dataset', '?'))} ({kit.esc(s.get('split', '?'))} split, "
             f"{n_splits} split(s)), {kit.esc(s.get('seeds', '?'))} seed(s) per split, budget "
             f"<code>{kit.esc(s.get('budget', '?'))}</code>. Every network is trained and "
             "tested on half B; the metric is top-1 test accuracy.</p>")
    legend = kit.bullets([f"<b>{kit.esc(k)}</b>: {kit.esc(v)}" for k, v in
                          DESCRIPTIONS.items()], raw=True)
    return kit.page(title, [
        kit.failures(curves.get("trial_failures")), intro, _splits(curves),
        kit.section("Findings", kit.paragraph(rule),
                    kit.bullets([_finding_item(f) for f in findings], raw=True)),
        kit.section("Figures", *(kit.figure(png, cap) for png, cap in images)),
        kit.section("Results (top-1 test accuracy on B, %; mean ± 95% CI, (units))",
                    results_table(curves), bases_paragraph(curves), legend,
                    kit.details("Every unit's value", values_table(curves))),
        kit.section("Settings", kit.kv_table(s)),
        kit.provenance_section(curves.get("provenance", {})),
    ])


def write_report(path: str | os.PathLike, curves: dict, findings: list[Finding], rule: str,
                 images: list[tuple[bytes, str]], title: str) -> str:
    """Render and write the report atomically; returns the path as a string."""
    return kit.write(path, render(curves, findings, rule, images, title))
