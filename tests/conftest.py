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


_MIN_STEPS_DEFAULT: list[int] = []  # TrainConfig's own default, saved by exact_epochs


def _set_min_steps_default(value: int) -> int:
    """Set ``TrainConfig``'s default ``min_steps`` (the dataclass field, which the CLI's
    flags read, and ``__init__``'s default); returns the previous one."""
    import dataclasses

    from transferlab.train.config import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    defaults = list(TrainConfig.__init__.__defaults__)
    assert len(defaults) == len(names), "every TrainConfig field has a default"
    i = names.index("min_steps")
    old, defaults[i] = defaults[i], value
    TrainConfig.__init__.__defaults__ = tuple(defaults)
    TrainConfig.__dataclass_fields__["min_steps"].default = value
    return old


@pytest.fixture(scope="session", autouse=True)
def exact_epochs():
    """The suite's budgets (epochs=1-3 on a few hundred examples) test behaviour, not
    accuracy: they train exactly their epochs, as they did before ``min_steps`` (default
    100 would make each run ~100 steps and the suite several times slower). Tests of the
    floor itself use ``real_min_steps``; a test that sets min_steps explicitly gets it."""
    _MIN_STEPS_DEFAULT.append(_set_min_steps_default(0))
    yield
    _set_min_steps_default(_MIN_STEPS_DEFAULT.pop())


@pytest.fixture
def real_min_steps():
    """TrainConfig's shipped ``min_steps`` default for this test (see ``exact_epochs``)."""
    previous = _set_min_steps_default(_MIN_STEPS_DEFAULT[-1])
    yield
    _set_min_steps_default(previous)


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
