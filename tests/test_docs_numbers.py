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
# Pages whose measured sections have not been converted yet: their numbers are not checked
# (they sit in the pages' lab-notebook sections). Every other page must be clean; a new page
# is checked by default.
UNAUDITED = {"advise.md", "depth.md", "transferability.md"}


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
