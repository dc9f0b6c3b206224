"""The local backend's worker pool: reused by the next sweep, never after Ctrl-C."""

from __future__ import annotations

import pytest

from transferlab.sweep import run_sweep
from transferlab.sweep.backends import local

TRIAL = "transferlab.sweep.testing:pid_trial"


def spec(name: str, seeds: int) -> dict:
    return {"name": name, "target": "digits:classes=5-9:size=8",
            "sources": {"scratch": {"pretrain": {"task": "digits:classes=0-4:size=8"},
                                    "epochs": 0}},
            "axes": {"protocol": ["scratch"], "seed": seeds}, "train": {"epochs": 0}}


@pytest.fixture(autouse=True)
def fresh_pools():
    local.close_pools()
    yield
    local.close_pools()


def test_a_second_sweep_reuses_the_workers_of_the_first(tmp_path):
    a = run_sweep(spec("a", 4), tmp_path / "a.sqlite", workers=2, progress=False,
                  trial_fn=TRIAL)
    b = run_sweep(spec("b", 4), tmp_path / "b.sqlite", workers=2, progress=False,
                  trial_fn=TRIAL)
    pids_a, pids_b = set(a["worker_pid"]), set(b["worker_pid"])
    assert (a["status"] == "done").all() and (b["status"] == "done").all()
    assert pids_b <= pids_a and len(pids_a) <= 2  # no new process was started
    assert len(local._POOLS) == 1


def test_another_environment_gets_its_own_workers(tmp_path, monkeypatch):
    a = run_sweep(spec("a", 2), tmp_path / "a.sqlite", workers=2, progress=False,
                  trial_fn=TRIAL)
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "other-cache"))
    b = run_sweep(spec("b", 2), tmp_path / "b.sqlite", workers=2, progress=False,
                  trial_fn=TRIAL)
    assert not set(a["worker_pid"]) & set(b["worker_pid"])
    assert len(local._POOLS) == 2


def test_a_killed_pool_is_not_reused():
    backend = local.make_local(2, pending=4)
    assert local.make_local(2, pending=4) is backend
    backend.shutdown()  # the end of a sweep: kept
    assert not backend.closed and local.make_local(2, pending=4) is backend
    backend.shutdown(kill=True)  # Ctrl-C: gone
    assert backend.closed and local.make_local(2, pending=4) is not backend
