"""Every number in README.md and docs/*.md comes from a committed results file.

``benchmarks/docs_tables.py`` writes the generated regions (``<!-- table:NAME -->``) from
``benchmarks/results/`` and checks the ``<!-- from: FILE#key/path -->`` references of prose
numbers; these tests fail when a region is stale, a reference disagrees with its file, or a
page outside ``UNAUDITED`` quotes a measured-looking number that nothing backs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Pages exempt from the rule below (none: a page's old lab notebook lives in its final
# "## History" section, which is not checked). A new page is checked by default.
UNAUDITED: set[str] = set()


@pytest.fixture(scope="module")
def dt():
    spec = importlib.util.spec_from_file_location("docs_tables",
                                                  ROOT / "benchmarks" / "docs_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_regions_are_up_to_date(dt):
    for path in dt.doc_files():
        text = path.read_text()
        assert dt.render(text) == text, f"{path.name}: stale tables; run make docs-tables"


def test_every_region_names_a_table_and_committed_files(dt):
    names = set()
    for path in dt.doc_files():
        names |= {m.group(2) for m in dt.REGION.finditer(path.read_text())}
    assert names <= set(dt.TABLES), names - set(dt.TABLES)
    assert {"benchmarks", "defrost-default", "ensemble-variants", "yosinski-digits",
            "fewshot-mnist-kmnist"} <= names


def test_prose_references_agree_with_their_files(dt):
    for path in dt.doc_files():
        assert dt.check_refs(path.read_text()) == [], path.name


def test_no_unbacked_measurement_on_audited_pages(dt):
    for path in dt.doc_files():
        if path.name in UNAUDITED:
            continue
        assert dt.unsourced(path.read_text()) == [], path.name


def test_the_checker_catches_a_wrong_number_and_a_bad_path(dt):
    ref = "benchmarks/results/depth_sweep_cpu.json#speedup"
    value = dt.at(dt.load(ref.split("#")[0]), "speedup")
    good = f"{value:.2f} <!-- from: {ref} -->x"
    assert dt.check_refs(good) == []
    assert dt.check_refs(f"{value + 0.02:.2f} <!-- from: {ref} -->x")  # off by 0.02
    assert dt.check_refs(f"{100 * value:.0f} <!-- from: {ref} x100 -->%") == []
    assert dt.check_refs("3.39 <!-- from: benchmarks/results/depth_sweep_cpu.json#nope -->")
    # an unbacked measurement is found; a setting, a goal, code and a backed number are not
    assert dt.unsourced("it ran in 2.5 s") and dt.unsourced("ratio 0.47x")
    assert dt.unsourced(f"levels 0.5, 0.99; goal <= 0.35x; `1.53%`; {good}") == []
    assert dt.unsourced("## History\n\nit ran in 2.5 s") == []


def test_known_answers_are_what_the_code_computes(dt):
    """A ``checked-by`` block is exempt from the file rule only because a test recomputes
    it: the estimators' values on two fixed inputs in docs/transferability.md."""
    import numpy as np

    from transferlab import transferability as tr

    text = (ROOT / "docs" / "transferability.md").read_text()
    block = dt.CHECKED_BY.search(text)
    assert block and (ROOT / block.group(1)).is_file()
    rows = [line.split("|")[1:-1] for line in block.group(0).splitlines()
            if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert len(rows) == 2
    for cells in rows:
        seed, *want = (c.strip() for c in cells)
        rng = np.random.default_rng(int(seed))
        X = rng.standard_normal((60, 8))
        y = np.arange(60) % 3
        X[np.arange(60), y] += 2.0
        L = rng.standard_normal((60, 5))
        P = np.exp(L) / np.exp(L).sum(1, keepdims=True)
        z = P.argmax(1)
        got = [tr.logme(X, y), tr.leep(P, y), tr.nce(z, y), tr.h_score(X, y),
               tr.regularized_h_score(X, y), tr.transrate(X, y)]
        for g, w in zip(got, want):
            assert float(g) == pytest.approx(float(w), abs=2e-10), (seed, w)
