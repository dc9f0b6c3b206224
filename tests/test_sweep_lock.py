"""One driver per database: a second sweep on a database a running sweep holds exits 2
naming the holder, never runs a trial twice; reading results while it runs still works."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from transferlab.errors import UserError
from transferlab.sweep import DriverLock, load_results, run_sweep
from transferlab.sweep.lock import lock_path

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="flock"), pytest.mark.slow]

# freeze:1..6 x 3 seeds = 18 real (tiny) trials, run one at a time: a few seconds.
SPEC = {
    "name": "lock",
    "target": "digits:classes=5-9:size=16",
    "sources": {"tiny": {"pretrain": {"task": "digits:classes=0-4:size=16",
                                      "arch_kwargs": {"width": 4, "fc_width": 16},
                                      "train": {"epochs": 1, "batch_size": 64,
                                                "device": "cpu", "min_steps": 0}}}},
    "axes": {"protocol": ["freeze"], "depth": "all", "seed": 3},
    # min_steps 0: the driver runs in a subprocess, outside conftest's exact_epochs
    "train": {"epochs": 1, "batch_size": 64, "device": "cpu", "min_steps": 0},
}
N_TRIALS = 18


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "transferlab.cli", *args]


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


# The first driver paces its trials (1 s each, no training) so that it is still running,
# however fast the machine, while the second driver and a reader are tried against it.
FIRST = ("import sys; from transferlab.sweep import run_sweep; "
         "run_sweep(sys.argv[1], sys.argv[2], workers=1, progress=False, "
         "trial_fn='transferlab.sweep.testing:paced_trial')")


def test_second_driver_exits_2_and_no_trial_runs_twice(tmp_path):
    spec, db = tmp_path / "spec.yaml", tmp_path / "l.sqlite"
    spec.write_text(yaml.safe_dump(SPEC))
    sweep = _cli("sweep", str(spec), "--db", str(db), "--workers", "1", "--quiet")
    env = {**os.environ, "TRANSFERLAB_TEST_TRIAL_SECONDS": "1"}
    first = subprocess.Popen([sys.executable, "-c", FIRST, str(spec), str(db)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = lock_path(db)
        while first.poll() is None and not (lock.exists() and lock.read_text()):
            time.sleep(0.05)
        holder = json.loads(lock.read_text())["pid"]
        assert holder == first.pid
        second = subprocess.run(sweep, capture_output=True, text=True, timeout=120)
        while first.poll() is None and _rows(db) < 1:
            time.sleep(0.05)
        results = subprocess.run(_cli("results", str(db), "--json"), capture_output=True,
                                 text=True, timeout=120)
        assert first.poll() is None, "the first sweep ended before the checks; make it longer"
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, second.stderr
    line = second.stderr.strip().splitlines()[-1]
    assert line.startswith(f"transferlab sweep: error: --db={str(db)!r} is in use by another "
                           f"sweep (pid {first.pid} on host ")
    assert "allowed is one driver per database; wait for it to finish, or pass another --db" \
        in line
    assert results.returncode == 0, results.stderr  # read-only, no lock: works meanwhile
    assert lock.read_text() == ""  # released (emptied) by the finished driver
    before = load_results(db).set_index("key")["finished_at"]

    again = subprocess.run([sys.executable, "-c", FIRST, str(spec), str(db)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr  # resumes: every trial is done, none reruns
    with sqlite3.connect(db) as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT key) FROM trials") \
            .fetchone()
    con.close()
    assert total == distinct == N_TRIALS
    df = load_results(db)
    assert (df["status"] == "done").all()
    # Every trial ran once: all stored by the first driver, none rewritten since.
    assert df.set_index("key")["finished_at"].sort_index().equals(before.sort_index())


def test_lock_in_this_process_is_refused_and_released(tmp_path):
    db = tmp_path / "l.sqlite"
    spec = {**SPEC, "axes": {"protocol": ["freeze:1"]}}
    with DriverLock(db):
        with pytest.raises(UserError, match=rf"is in use by another sweep \(pid {os.getpid()} "):
            run_sweep(spec, db, workers=1, progress=False,
                      trial_fn="transferlab.sweep.testing:fake_trial")
        assert not db.exists()  # refused before anything was written
    df = run_sweep(spec, db, workers=1, progress=False,
                   trial_fn="transferlab.sweep.testing:fake_trial")
    assert (df["status"] == "done").all()
    with DriverLock(db):  # run_sweep released it
        pass
