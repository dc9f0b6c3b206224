"""Imports go down the floors: an AST scan of every module under src/transferlab.

A module imports only what sits on its own floor or below; shared helpers (``report``:
output checks, JSON, PNG, the HTML kit) live below their users. Function-local imports
count too: a lazy import up a floor is still a cycle waiting to happen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "transferlab"

# folder (or module) -> the transferlab subpackages it must never import
FORBIDDEN = {
    "report": ("cli", "studies", "advise", "sweep", "api", "search", "ensemble"),
    "train": ("cli", "studies", "advise", "sweep", "report"),
    "models": ("cli", "studies", "advise", "sweep", "report", "api"),
    "data": ("cli", "studies", "advise", "sweep", "report", "api"),
    "protocols": ("cli", "studies", "advise", "sweep", "report"),
    "advise": ("cli", "studies"),
    "sweep": ("cli", "studies"),
    "search": ("cli", "studies"),
    "ensemble": ("cli", "studies"),
    "studies": ("cli",),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every ``import``/``from ... import`` in ``path``, relative
    imports resolved against the module's package."""
    tree = ast.parse(path.read_text(), str(path))
    package = ["transferlab", *path.relative_to(SRC).parent.parts]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            # "from transferlab import cli" names the subpackage in the alias
            if mod == "transferlab":
                out += [(node.lineno, f"transferlab.{a.name}") for a in node.names]
    return out


def _violations(floor: str, forbidden: tuple[str, ...]) -> list[str]:
    root = SRC / floor
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    bad = []
    for f in files:
        for line, mod in _imports(f):
            parts = mod.split(".")
            if parts[0] == "transferlab" and len(parts) > 1 and parts[1] in forbidden:
                bad.append(f"{f.relative_to(SRC.parent)}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_no_import_goes_up_a_floor(floor: str) -> None:
    assert _violations(floor, FORBIDDEN[floor]) == []


def test_the_scan_sees_imports_it_must_refuse(tmp_path, monkeypatch) -> None:
    """The scanner itself: absolute, aliased, relative and function-local imports."""
    pkg = tmp_path / "transferlab" / "train"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text(
        "import transferlab.cli\n"
        "from transferlab import studies\n"
        "from ..cli import _common\n"
        "def f():\n    from transferlab.studies.kit import stats\n"
        "from transferlab.models import build_model\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path / "transferlab")
    bad = _violations("train", FORBIDDEN["train"])
    assert sorted(b.split(" imports ")[1] for b in bad) == [
        "transferlab.cli", "transferlab.cli", "transferlab.studies", "transferlab.studies.kit"]

