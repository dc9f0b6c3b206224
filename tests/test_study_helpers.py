"""Synthetic Yosinski result tables with known means and spreads, and a headless-browser
check of a report (helpers, no tests)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from transferlab.studies.yosinski.curves import RECIPES

DEPTHS = [1, 2, 3, 4, 5, 6]
BLOCKS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
ORDER = list(RECIPES)  # a fixed index per condition, for the jitter pattern


def offsets(n_seeds: int, spread: float) -> list[float]:
    """Per-unit offsets with mean 0 and sample std exactly ``spread`` (n >= 2)."""
    if n_seeds == 1:
        return [0.0]
    if n_seeds == 2:
        return [-spread / 2 ** 0.5, spread / 2 ** 0.5]
    if n_seeds == 3:
        return [-spread, 0.0, spread]
    assert n_seeds == 4
    return [s * spread / (5 / 3) ** 0.5 for s in (-1.5, -0.5, 0.5, 1.5)]


def table(means: dict[str, dict[int, float] | float], n_seeds: int = 3,
          spread: float = 0.01, jitter: float = 0.0,
          split_seeds: list[int] | None = None) -> pd.DataFrame:
    """Rows as the sweep returns them (source, protocol, depth, seed, split_seed, test_acc,
    status).

    ``means``: condition -> {depth: mean} (or a float for baseB). Unit j of every condition
    gets ``offsets(n, spread)[j]`` (shared by all conditions: a good unit is good
    everywhere, as with shared base networks) plus ``jitter`` × a per-condition rotation
    of ``offsets(n, 1)``, which keeps every cell mean exact while giving the paired
    differences of two conditions a known, nonzero spread. ``split_seeds``: the units are
    (split seed, seed) pairs, ``n_seeds`` in all, dealt out in order.
    """
    units = [(None, s) for s in range(n_seeds)] if split_seeds is None else \
        [(split_seeds[j % len(split_seeds)], j // len(split_seeds)) for j in range(n_seeds)]
    shared, pattern = offsets(n_seeds, spread), offsets(n_seeds, 1.0)
    rows = []
    for cond, by_depth in means.items():
        source, family = RECIPES[cond]
        k = ORDER.index(cond)
        items = [(None, by_depth)] if isinstance(by_depth, float) else by_depth.items()
        for depth, mu in items:
            for j, (split_seed, seed) in enumerate(units):
                value = mu + shared[j] + jitter * pattern[(j + k) % n_seeds]
                rows.append({"source": source,
                             "protocol": family if depth is None else f"{family}:{depth}",
                             "depth": depth, "seed": seed, "split_seed": split_seed,
                             "test_acc": value, "status": "done"})
    return pd.DataFrame(rows)


def paper_like(base: float = 0.90, drop: bool = True, dip: bool = True, boost: bool = True,
               random_worse: bool = True) -> dict:
    """Means with each of the paper's effects switched on or off."""
    bnb = {d: base - (0.04 if dip and d in (3, 4) else 0.0) for d in DEPTHS}
    anb = {d: bnb[d] - (0.03 * (d - 3) if drop and d >= 4 else 0.0) for d in DEPTHS}
    anbp = {d: base + (0.02 if boost else 0.0) for d in DEPTHS}
    rnd = {d: anb[d] - (0.05 * d if random_worse else 0.0) for d in DEPTHS}
    return {"baseB": base, "BnB": bnb, "BnB+": {d: base for d in DEPTHS}, "AnB": anb,
            "AnB+": anbp, "random": rnd}


CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
needs_chromium = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
    reason="needs Debian's chromium and chromium-driver at /usr/bin")


def check_in_chromium(path, n_images: int) -> str:
    """Open the report in headless Chromium; assert its ``n_images`` images decode and are
    displayed with a size; returns the page's visible text."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

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
        assert len(imgs) == n_images
        for img in imgs:
            assert img.is_displayed()
            assert driver.execute_script("return arguments[0].complete && "
                                         "arguments[0].naturalWidth", img) > 0
            assert img.size["width"] > 0 and img.size["height"] > 0
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()
