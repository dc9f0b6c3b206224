"""The self-contained HTML report: figures as base64 PNG, findings, table, settings.

No external resource (stylesheet, script, font) is referenced, so the file can be mailed
or archived and still renders the same offline.
"""

from __future__ import annotations

import base64
import json
import os
from html import escape

from transferlab._atomic import write_text_atomic
from transferlab.studies.curves import CONDITIONS, DESCRIPTIONS, REFERENCE
from transferlab.studies.findings import Finding

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eee}
.yes{color:#1a7f37;font-weight:600}.no{color:#b42318;font-weight:600}.na{color:#777}
li{margin:.4rem 0}code{background:#f4f4f4;padding:0 .2rem}
"""


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def _cell(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "–"
    return f"{_pct(mean)} ± {_pct(std)} <small>({n})</small>" if std is not None \
        else f"{_pct(mean)} <small>({n})</small>"


def img_tag(png: bytes, alt: str) -> str:
    """An <img> whose source is the PNG itself (data URI)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def results_table(curves: dict) -> str:
    """Mean ± std (seeds) of top-1 test accuracy on B, in percent, per n and condition."""
    names = curves.get("block_names") or []
    head = "".join(f"<th>{escape(c)}</th>" for c in CONDITIONS)
    rows = []
    base = curves[REFERENCE]
    rows.append(f'<tr><td class="l">0 (baseB)</td><td class="l" colspan="{len(CONDITIONS)}">'
                f"baseB {_cell(base['mean'], base['std'], base['n'])}: the reference line "
                "for every n</td></tr>")
    for i, d in enumerate(curves["depths"]):
        label = f"{d} ({names[d - 1]})" if d <= len(names) else str(d)
        cells = []
        for c in CONDITIONS:
            cond = curves["conditions"][c]
            cells.append(f"<td>{_cell(cond['mean'][i], cond['std'][i], cond['n'][i])}</td>")
        rows.append(f'<tr><td class="l">{escape(label)}</td>{"".join(cells)}</tr>')
    return (f'<table><tr><th class="l">n (last block copied)</th>{head}</tr>'
            + "".join(rows) + "</table>")


def seeds_table(curves: dict) -> str:
    """Every seed's value, for checking the means by hand."""
    rows = []
    base = curves[REFERENCE]
    for s, v in zip(base["seeds"], base["values"]):
        rows.append(f'<tr><td class="l">baseB</td><td>–</td><td>{s}</td><td>{_pct(v)}</td></tr>')
    for c in CONDITIONS:
        cond = curves["conditions"][c]
        for d, seeds, vals in zip(cond["depth"], cond["seeds"], cond["values"]):
            for s, v in zip(seeds, vals):
                rows.append(f'<tr><td class="l">{escape(c)}</td><td>{d}</td><td>{s}</td>'
                            f"<td>{_pct(v)}</td></tr>")
    return ('<table><tr><th class="l">condition</th><th>n</th><th>seed</th>'
            "<th>test acc. (%)</th></tr>" + "".join(rows) + "</table>")


def bases_paragraph(curves: dict) -> str:
    """The base networks' own test accuracy (from their pretraining runs)."""
    bases = curves.get("base_networks") or {}
    parts = []
    for name, half in (("baseA", "A"), ("baseB", "B")):
        b = bases.get(name)
        if b and b["mean"] is not None:
            parts.append(f"{name} reaches {_cell(b['mean'], b['std'], b['n'])} % on {half}")
    if not parts:
        return ""
    return ("<p>Base networks (their own pretraining runs; test accuracy, mean ± std "
            f"(seeds)): {'; '.join(parts)}. The baseB line in the figure and table comes "
            "from separate <code>scratch</code> trials on B with the same budget.</p>")


def _kv_table(d: dict) -> str:
    rows = []
    for k, v in d.items():
        text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        rows.append(f'<tr><th class="l">{escape(str(k))}</th><td class="l"><code>'
                    f"{escape(text)}</code></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _finding_item(f: Finding) -> str:
    badge = {True: '<span class="yes">reproduces</span>',
             False: '<span class="no">does not reproduce</span>',
             None: '<span class="na">not measured</span>'}[f.reproduced]
    return f"<li><b>{escape(f.title)}</b> — {badge}. {escape(f.text)}</li>"


def render(curves: dict, findings: list[Finding], rule: str, images: list[tuple[bytes, str]],
           title: str) -> str:
    """The report as one HTML string. ``images``: (PNG bytes, caption) pairs."""
    s = curves.get("settings", {})
    halves = (f"<p>Half A ({len(curves.get('classes_a', []))} classes): "
              f"{escape(', '.join(map(str, curves.get('classes_a', []))))}<br>"
              f"Half B ({len(curves.get('classes_b', []))} classes): "
              f"{escape(', '.join(map(str, curves.get('classes_b', []))))}</p>")
    figs = "".join(f"<figure>{img_tag(png, cap)}<figcaption>{escape(cap)}</figcaption></figure>"
                   for png, cap in images)
    legend = "".join(f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in
                     DESCRIPTIONS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>A reproduction of Yosinski et al. (2014), <i>How transferable are features in deep neural
networks?</i>, with transferlab's convnet ({len(curves.get('block_names', []))} transferable
blocks), on {escape(str(s.get('dataset', '?')))} ({escape(str(s.get('split', '?')))} split),
{escape(str(s.get('seeds', '?')))} seed(s), budget <code>{escape(str(s.get('budget', '?')))}
</code>. Every network is trained and tested on half B; the metric is top-1 test accuracy.</p>
{halves}
<h2>Findings</h2>
<p>{escape(rule)}</p>
<ul>{"".join(_finding_item(f) for f in findings)}</ul>
<h2>Figures</h2>
{figs}
<h2>Results (top-1 test accuracy on B, %; mean ± std over seeds, (seeds))</h2>
{results_table(curves)}
{bases_paragraph(curves)}
<ul>{legend}</ul>
<details><summary>Every seed's value</summary>{seeds_table(curves)}</details>
<h2>Settings</h2>
{_kv_table(s)}
<h2>Provenance</h2>
{_kv_table(curves.get('provenance', {}))}
</body></html>
"""


def write_report(path: str | os.PathLike, curves: dict, findings: list[Finding], rule: str,
                 images: list[tuple[bytes, str]], title: str) -> str:
    """Render and write the report atomically; returns the path as a string."""
    write_text_atomic(path, render(curves, findings, rule, images, title))
    return str(path)
