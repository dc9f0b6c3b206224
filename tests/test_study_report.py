"""Yosinski study: the figure and the self-contained HTML report (plus a headless browser),
and the shared report kit it is built on."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats as st

from test_study_helpers import (BLOCKS, DEPTHS, check_in_chromium, needs_chromium,
                                paper_like, table)
from transferlab.report import html as kit
from transferlab.report.png import png_bytes
from transferlab.studies.yosinski.curves import CONDITIONS, compute_curves, label_conditions
from transferlab.studies.yosinski.findings import findings
from transferlab.studies.yosinski.plot import LABELS, draw
from transferlab.studies.yosinski.report import render, write_report


def _curves(means=None, n_seeds=4) -> dict:
    c = compute_curves(label_conditions(table(means or paper_like(), n_seeds, 0.01, 0.003,
                                              [0, 1])))
    c.update(block_names=BLOCKS, classes_a=["cat", "dog"], classes_b=["ship", "truck"],
             splits=[{"split_seed": 0, "classes_a": ["cat", "dog"],
                      "classes_b": ["ship", "truck"]},
                     {"split_seed": 1, "classes_a": ["cat", "ship"],
                      "classes_b": ["dog", "truck"]}],
             settings={"dataset": "digits", "split": "random", "seeds": 2,
                       "budget": "quick"},
             provenance={"commit": "abc123", "versions": {"torch": "2.13.0"}})
    return c


def test_figure_lines_go_through_the_means_and_dots_are_every_seed():
    c = _curves()
    fig = draw(c, "test")
    top = fig.axes[0]
    lines = {ln.get_label(): ln for ln in top.get_lines()}
    for name in CONDITIONS:
        np.testing.assert_allclose(lines[LABELS[name]].get_ydata(), c["conditions"][name]["mean"])
    base = [ln for ln in top.get_lines() if ln.get_label().startswith("baseB")]
    assert len(base) == 1 and base[0].get_ydata()[0] == pytest.approx(0.90)
    # One dot per unit: baseB's 4 at n = 0 plus 4 per condition and depth.
    n_dots = sum(len(col.get_offsets()) for col in top.collections
                 if len(col.get_offsets()) and col.get_offsets().shape[1] == 2)
    assert n_dots == 4 + 4 * len(CONDITIONS) * len(DEPTHS)
    # The bottom panel's error bars are the 95% t-intervals.
    bars = {c.get_label(): c for c in fig.axes[1].containers}
    anb = c["conditions"]["AnB"]
    seg = bars[LABELS["AnB"]].lines[2][0].get_segments()
    np.testing.assert_allclose([s[:, 1] for s in seg], np.c_[anb["ci_low"], anb["ci_high"]])
    img = Image.open(io.BytesIO(png_bytes(fig)))
    assert img.format == "PNG" and img.size[0] > 400 and img.size[1] > 400


def _report(tmp_path, means=None):
    c = _curves(means)
    rule, fs = findings(c)
    png = png_bytes(draw(c))
    path = write_report(tmp_path / "report.html", c, fs, rule, [(png, "Figure 2")], "Study")
    return c, fs, png, path


def test_report_embeds_the_png_and_states_the_numbers(tmp_path):
    c, fs, png, path = _report(tmp_path)
    html = open(path, encoding="utf-8").read()
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in html
    # Every mean ± 95% CI half-width of the table, in percent (e.g. AnB at n = 6).
    for name in CONDITIONS:
        cond = c["conditions"][name]
        for m, sd, n in zip(cond["mean"], cond["std"], cond["n"]):
            half = st.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
            assert f"{100 * m:.2f} ± {100 * half:.2f} <small>(4)</small>" in html
    base = c["baseB"]
    assert f"90.00 ± {100 * st.t.ppf(0.975, 3) * base['std'] / 2:.2f}" in html
    for f in fs:
        assert f.title in html
        for row in f.tests:  # every corrected p-value is shown
            p = row["p_holm"]
            assert ("p &lt; 0.001" if p < 0.001 else f"p = {p:.3f}") in html
    assert "AnB falls below BnB at n = 4–6" in html
    assert "ship, truck" in html and "cat, ship" in html and "abc123" in html
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)


def test_report_text_follows_the_numbers(tmp_path):
    _, _, _, path = _report(tmp_path, paper_like(drop=False))
    html = open(path, encoding="utf-8").read()
    assert "AnB never falls significantly below BnB" in html
    assert "AnB falls below BnB" not in html


def test_render_escapes_class_names():
    c = _curves()
    c["splits"][0]["classes_b"] = ["<script>x</script>"]
    html = render(c, [], "rule", [], "t")
    assert "<script>x" not in html and "&lt;script&gt;x" in html


def test_kit_table_from_rows_and_frames_escapes_unless_raw():
    rows = [{"a": "<b>", "b": 1.5}, {"a": "x", "b": 2.0}]
    html = kit.table(rows, left=("a",))
    assert html.startswith("<table><tr><th class=\"l\">a</th><th>b</th></tr>")
    assert '<td class="l">&lt;b&gt;</td><td>1.5</td>' in html
    assert kit.table(pd.DataFrame(rows)) == kit.table(rows)
    assert "<td><b></td>" in kit.table(rows, raw=("a",))
    assert kit.table(rows, ["b"], ["B value"]) == \
        "<table><tr><th>B value</th></tr><tr><td>1.5</td></tr><tr><td>2.0</td></tr></table>"


def test_kit_page_is_one_self_contained_document():
    png = png_bytes(draw(_curves()))
    html = kit.page("T <1>", [kit.section("S & s", kit.paragraph("p<q"),
                                          kit.figure(png, "cap")),
                              kit.provenance_section({"commit": "abc"})])
    assert html.startswith("<!DOCTYPE html>") and html.count("<html") == 1
    assert "<title>T &lt;1&gt;</title>" in html and "<h2>S &amp; s</h2>" in html
    assert "<p>p&lt;q</p>" in html and "<h2>Provenance</h2>" in html and "abc" in html
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in html
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)


@needs_chromium
def test_report_images_render_in_headless_chromium(tmp_path):
    c = _curves()
    rule, fs = findings(c)
    images = [(png_bytes(draw(c)), "Figure 2"), (png_bytes(draw(c, "again")), "copy")]
    path = write_report(tmp_path / "report.html", c, fs, rule, images, "Study")
    body = check_in_chromium(path, n_images=2)
    assert "AnB falls below BnB" in body


def test_comparison_figure_plots_anb_relative_to_each_splits_baseline():
    from transferlab.studies.yosinski.plot import draw_comparison

    rnd = _curves()
    dis = _curves(dict(paper_like(base=0.80)))
    dis["settings"] = dict(dis["settings"], split="dissimilar")
    ax = draw_comparison(rnd, dis).axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["AnB / baseB, random split"].get_ydata(),
                               np.array(rnd["conditions"]["AnB"]["mean"]) / 0.90)
    np.testing.assert_allclose(lines["AnB / baseB, dissimilar split"].get_ydata(),
                               np.array(dis["conditions"]["AnB"]["mean"]) / 0.80)
    assert lines["AnB / baseB, dissimilar split"].get_color() == "#a61c1c"
