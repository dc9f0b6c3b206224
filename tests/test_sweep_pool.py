"""The local backend's worker pool: reused by the next sweep, never after Ctrl-C."""

from __future__ import annotations

import os

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
    driver = {os.getpid()}  # the driver runs trials too; its workers are new
    assert set(a["worker_pid"]) - driver and set(b["worker_pid"]) - driver
    assert not (set(a["worker_pid"]) & set(b["worker_pid"])) - driver
    assert len(local._POOLS) == 2


def test_a_killed_pool_is_not_reused():
    backend = local.make_local(2, pending=4)
    assert local.make_local(2, pending=4) is backend
    backend.shutdown()  # the end of a sweep: kept
    assert not backend.closed and local.make_local(2, pending=4) is backend
    backend.shutdown(kill=True)  # Ctrl-C: gone
    assert backend.closed and local.make_local(2, pending=4) is not backend


def test_the_driver_runs_one_trial_at_a_time_and_gets_its_state_back(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng = torch.random.get_rng_state()
    df = run_sweep(spec("a", 6), tmp_path / "a.sqlite", workers=2, progress=False,
                   trial_fn=TRIAL)
    assert os.getpid() in set(df["worker_pid"])  # one slot is the driver's own thread
    assert len(set(df["worker_pid"])) == 2
    assert torch.get_num_threads() == threads  # trials ran with a worker's share of cores
    assert torch.equal(torch.random.get_rng_state(), rng)  # trials seed; the driver's RNG stays


def test_a_single_worker_sweep_leaves_the_callers_rng_alone(tmp_path):
    import torch

    torch.manual_seed(7)
    rng = torch.random.get_rng_state()
    df = run_sweep(spec("a", 2), tmp_path / "a.sqlite", workers=1, progress=False,
                   trial_fn=TRIAL)
    assert set(df["worker_pid"]) == {os.getpid()}
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_driver_trials_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DRIVER_TRIALS", "0")
    df = run_sweep(spec("a", 4), tmp_path / "a.sqlite", workers=2, progress=False,
                   trial_fn=TRIAL)
    assert (df["status"] == "done").all() and os.getpid() not in set(df["worker_pid"])


def test_a_kill_stops_the_trial_running_in_the_driver():
    import time

    backend = local.make_local(2, pending=2)
    job = {"kind": "trial", "cfg": {"protocol": "scratch", "seed": 0, "task": "t"},
           "trial_fn": "transferlab.sweep.testing:slow_trial", "feature_cache_dir": None}
    handle = backend.submit(job)  # the driver's slot is free first
    deadline = time.monotonic() + 5
    while backend._here_ident is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend._here_ident is not None, "the job did not start in the driver's thread"
    t0 = time.monotonic()
    backend.shutdown(kill=True, handles=[handle])
    [(_, result)] = backend.wait([handle], timeout=5)
    assert result["status"] == "lost" and "_Stopped" in result["error"]
    assert time.monotonic() - t0 < 5 and backend._here_ident is None
