"""Yosinski study: the figure and the self-contained HTML report (plus a headless browser)."""

from __future__ import annotations

import base64
import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from test_study_helpers import BLOCKS, DEPTHS, paper_like, table
from transferlab.studies.curves import CONDITIONS, compute_curves, label_conditions
from transferlab.studies.findings import findings
from transferlab.studies.plot import LABELS, draw, png_bytes
from transferlab.studies.report import render, write_report


def _curves(means=None, n_seeds=3) -> dict:
    c = compute_curves(label_conditions(table(means or paper_like(), n_seeds, 0.01)))
    c.update(block_names=BLOCKS, classes_a=["cat", "dog"], classes_b=["ship", "truck"],
             settings={"dataset": "digits", "split": "random", "seeds": n_seeds,
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
    # One dot per seed: baseB's 3 at n = 0 plus 3 per condition and depth.
    n_dots = sum(len(col.get_offsets()) for col in top.collections
                 if len(col.get_offsets()) and col.get_offsets().shape[1] == 2)
    assert n_dots == 3 + 3 * len(CONDITIONS) * len(DEPTHS)
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
    # Every mean ± std of the table, in percent (e.g. AnB at n = 6: 81.00 ± 1.00).
    for name in CONDITIONS:
        for m in c["conditions"][name]["mean"]:
            assert f"{100 * m:.2f} ± 1.00" in html
    assert "90.00 ± 1.00" in html  # baseB
    for f in fs:
        assert f.title in html
    assert "AnB falls below BnB at n = 4–6" in html
    assert "ship, truck" in html and "abc123" in html
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)


def test_report_text_follows_the_numbers(tmp_path):
    _, _, _, path = _report(tmp_path, paper_like(drop=False))
    html = open(path, encoding="utf-8").read()
    assert "AnB never falls measurably below BnB" in html
    assert "AnB falls below BnB" not in html


def test_render_escapes_class_names():
    c = _curves()
    c["classes_b"] = ["<script>x</script>"]
    html = render(c, [], "rule", [], "t")
    assert "<script>x" not in html and "&lt;script&gt;x" in html


CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                    reason="needs Debian's chromium and chromium-driver at /usr/bin")
def test_report_images_render_in_headless_chromium(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    c = _curves()
    rule, fs = findings(c)
    images = [(png_bytes(draw(c)), "Figure 2"), (png_bytes(draw(c, "again")), "copy")]
    path = write_report(tmp_path / "report.html", c, fs, rule, images, "Study")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=opts, service=Service(DRIVER))
    try:
        driver.get(f"file://{path}")
        imgs = driver.find_elements(By.TAG_NAME, "img")
        assert len(imgs) == 2
        for img in imgs:
            assert img.is_displayed()
            assert driver.execute_script("return arguments[0].complete && "
                                         "arguments[0].naturalWidth", img) > 0
            assert img.size["width"] > 0 and img.size["height"] > 0
        assert "AnB falls below BnB" in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()


def test_comparison_figure_plots_anb_relative_to_each_splits_baseline():
    from transferlab.studies.plot import draw_comparison

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
