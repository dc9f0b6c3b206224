"""Building blocks of a self-contained HTML report (no study-specific wording).

A report is ``page(title, [section(...), ...])``: one HTML string with its CSS inline and
its figures embedded as base64 PNG, so the file can be mailed or archived and renders the
same offline (nothing is fetched). Every piece of text goes through ``esc``; functions that
take ``raw`` HTML say so.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Sequence
from html import escape

from transferlab._atomic import write_text_atomic

CSS = """
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


def esc(value) -> str:
    """Text (any value, via ``str``) made safe for HTML content and attributes."""
    return escape(str(value))


def img_tag(png: bytes, alt: str) -> str:
    """An <img> whose source is the PNG itself (data URI)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def figure(png: bytes, caption: str) -> str:
    """An embedded PNG with its caption."""
    return f"<figure>{img_tag(png, caption)}<figcaption>{esc(caption)}</figcaption></figure>"


def section(title: str, *parts: str) -> str:
    """``<h2>title</h2>`` followed by ``parts`` (raw HTML, e.g. from the functions here)."""
    return f"<h2>{esc(title)}</h2>\n" + "\n".join(p for p in parts if p)


def paragraph(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def bullets(items: Iterable[str], raw: bool = False) -> str:
    """A <ul>; items are escaped unless ``raw`` (then they are HTML already)."""
    lis = "".join(f"<li>{item if raw else esc(item)}</li>" for item in items)
    return f"<ul>{lis}</ul>" if lis else ""


def table(rows, columns: Sequence[str] | None = None, headers: Sequence[str] | None = None,
          left: Sequence[str] = (), raw: Sequence[str] = ()) -> str:
    """An HTML table from a list of dicts or a ``pandas.DataFrame``.

    Args:
        rows: dicts (column -> value) or a DataFrame (its columns, in order).
        columns: which columns, in order (default: the first row's keys / the frame's).
        headers: header texts (default: the column names).
        left: columns aligned left (labels); the rest align right (numbers).
        raw: columns whose values are HTML already (everything else is escaped).
    """
    if hasattr(rows, "to_dict"):  # a DataFrame
        columns = list(columns or rows.columns)
        rows = rows.to_dict("records")
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))
    headers = list(headers or columns)

    def cls(col: str) -> str:
        return ' class="l"' if col in left else ""

    head = "".join(f"<th{cls(c)}>{esc(h)}</th>" for c, h in zip(columns, headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(c)}>{r.get(c, '') if c in raw else esc(r.get(c, ''))}</td>"
                         for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def kv_table(d: dict) -> str:
    """Two columns: key, value (non-strings as sorted JSON), for settings and provenance."""
    rows = []
    for k, v in d.items():
        text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        rows.append(f'<tr><th class="l">{esc(k)}</th><td class="l"><code>{esc(text)}'
                    "</code></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def details(summary: str, body: str) -> str:
    """A collapsed block (``body`` is raw HTML)."""
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def provenance_section(prov: dict) -> str:
    """The "Provenance" section: commit, versions, machine (``transferlab.provenance``)."""
    return section("Provenance", kv_table(prov or {}))


def failures(text: str | None) -> str:
    """The failed trials' count and causes (``sweep.failures.check_trials``), for the top
    of a report; '' when none failed."""
    return section("Failed trials", paragraph(text)) if text else ""


def page(title: str, parts: Iterable[str]) -> str:
    """The whole document: ``<h1>title</h1>`` then ``parts`` (raw HTML) in order."""
    body = "\n".join(p for p in parts if p)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body>
<h1>{esc(title)}</h1>
{body}
</body></html>
"""


def write(path: str | os.PathLike, html: str) -> str:
    """Write ``html`` atomically; returns the path as a string."""
    write_text_atomic(path, html)
    return str(path)
