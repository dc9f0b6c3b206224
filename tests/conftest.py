"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` form the CUDA lane: they skip, with the reason, where no CUDA
    device is visible (this CPU machine and CI)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu lane: no CUDA device here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Skip reasons that name a kind of machine, summarised as one group each.
_SKIP_GROUPS = (("chromium", "browser check(s) (no chromium)"),
                ("gpu lane", "gpu lane (no CUDA)"))


def skip_summary(reasons: list[str]) -> str:
    """One line naming what skipped and why: known machine-dependent reasons grouped
    (browser checks, the gpu lane), every other reason counted as it reads."""
    from collections import Counter

    counts: Counter = Counter()
    for reason in reasons:
        reason = reason.removeprefix("Skipped: ").strip()
        group = next((g for key, g in _SKIP_GROUPS if key in reason.lower()), None)
        counts[group or reason] += 1
    return "skipped: " + ", ".join(f"{n} {what}" for what, n in counts.most_common())


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say, in one line at the end of every run, what did not run here and why."""
    reasons = []
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = rep.longrepr
        reasons.append(longrepr[2] if isinstance(longrepr, tuple) else str(longrepr))
    if reasons:
        terminalreporter.write_line(skip_summary(reasons))


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """A test of its own data layer: a fresh decode cache under tmp_path, no user data
    directory ($TRANSFERLAB_DATA unset), and no dataset or checksum remembered in memory
    from an earlier test (cleared before and after)."""
    from transferlab.data import cache, clear_memory_cache

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TRANSFERLAB_DATA", raising=False)
    cache._memo.clear()
    clear_memory_cache()
    yield
    cache._memo.clear()
    clear_memory_cache()


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models gain nothing from intra-op threads, and on
    a shared, oversubscribed CPU their barriers cost 5-7x (measured)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
