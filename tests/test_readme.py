"""The README's Python examples run as written, and ``transferlab.<subpackage>`` resolves
after a bare ``import transferlab``.

Every ```python block of README.md is discovered (whatever the README says today), and the
blocks run in order in one namespace in a temporary folder, as a reader pasting them into
one session would. Budgets are small: every ``TrainConfig`` is capped at one epoch. A block
that needs data the machine may lack says so on a line of its own, ``# needs: mnist`` (or
``# needs: mnist, cifar10``); it is skipped, with that reason, when a named dataset is not
found. A name that is not a dataset (e.g. ``# needs: gpu``) always skips with its name.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
_NEEDS = re.compile(r"^\s*#\s*needs:\s*(.+?)\s*$", re.M)


def readme_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block in ``text``."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def missing_needs(code: str, found: dict[str, bool]) -> list[str]:
    """The ``# needs:`` names of ``code`` that this machine lacks (``found``: dataset ->
    available; other names are never available here)."""
    names = [n.strip() for m in _NEEDS.finditer(code) for n in m.group(1).split(",")]
    return [n for n in names if n and not found.get(n, False)]


_BLOCKS = readme_blocks(README.read_text()) if README.exists() else []


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One namespace and one working folder for all blocks, and whether each dataset is
    here (``dataset_status``)."""
    from transferlab.data import dataset_status

    found = {r["name"]: bool(r["found"]) for r in dataset_status()}
    return {"ns": {"__name__": "__readme__"}, "dir": tmp_path_factory.mktemp("readme"),
            "found": found, "failed": []}


@pytest.fixture
def small_budgets(monkeypatch):
    """Every training run of a block at most one epoch (and no step floor)."""
    from transferlab.train.config import TrainConfig

    original = TrainConfig.__post_init__

    def capped(self) -> None:
        original(self)
        self.epochs = min(self.epochs, 1)
        if hasattr(self, "min_steps"):
            self.min_steps = 0

    monkeypatch.setattr(TrainConfig, "__post_init__", capped)


@pytest.mark.skipif(not _BLOCKS, reason="README.md has no ```python block")
@pytest.mark.parametrize("line,code", _BLOCKS, ids=[f"README.md:{n}" for n, _ in _BLOCKS])
def test_readme_block_runs(line: int, code: str, session, small_budgets, monkeypatch,
                           one_thread) -> None:
    missing = missing_needs(code, session["found"])
    if missing:
        pytest.skip(f"README.md:{line} needs {', '.join(missing)} (not found here)")
    monkeypatch.chdir(session["dir"])
    exec(compile(code, f"README.md:{line}", "exec"), session["ns"])  # noqa: S102


def test_block_discovery_and_needs() -> None:
    text = ("intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n"
            "```python title\n# needs: mnist, gpu\ny = 2\n```\n")
    blocks = readme_blocks(text)
    assert blocks == [(3, "x = 1\n"), (10, "# needs: mnist, gpu\ny = 2\n")]
    assert missing_needs(blocks[0][1], {}) == []
    assert missing_needs(blocks[1][1], {"mnist": True}) == ["gpu"]
    assert missing_needs(blocks[1][1], {"mnist": False}) == ["mnist", "gpu"]


def test_subpackages_are_attributes_after_a_bare_import() -> None:
    """``transferlab.models.wrap`` etc. work after ``import transferlab``, and the import
    itself stays light: no torch until a subpackage is touched."""
    code = (
        "import sys, transferlab as tl\n"
        "assert 'torch' not in sys.modules, 'import transferlab imported torch'\n"
        "names = ['models', 'data', 'protocols', 'similarity', 'transferability', 'sweep',\n"
        "         'studies', 'train', 'metrics', 'ensemble', 'search', 'analysis', 'report']\n"
        "for n in names:\n"
        "    mod = getattr(tl, n)\n"
        "    assert mod.__name__ == 'transferlab.' + n, mod\n"
        "    assert n in dir(tl)\n"
        "assert callable(tl.models.wrap) and tl.models.wrap is tl.wrap\n"
        "assert callable(tl.advise)  # the function, not the subpackage\n"
        "try:\n"
        "    tl.no_such_thing\n"
        "except AttributeError as e:\n"
        "    assert 'no_such_thing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
