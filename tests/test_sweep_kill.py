"""Acceptance: a sweep killed (SIGKILL) or interrupted (SIGINT) at random moments and
restarted ends with every trial stored once, an intact database, and the same results as
an uninterrupted run. Real (tiny) trials on CPU, two worker processes."""

from __future__ import annotations

import os
import random
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from transferlab.sweep import aggregate, load_results

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.slow]

# 2 protocols x depths 1..6 x 2 seeds = 24 trials, each a fraction of a second.
SPEC = {
    "name": "kill",
    "target": "digits:classes=5-9:size=16",
    "sources": {"tiny": {"pretrain": {"task": "digits:classes=0-4:size=16",
                                      "arch_kwargs": {"width": 4, "fc_width": 16},
                                      "train": {"epochs": 1, "batch_size": 64,
                                                "device": "cpu", "min_steps": 0}}}},
    "axes": {"protocol": ["freeze", "reinit+"], "depth": "all", "seed": 2},
    # min_steps 0: the driver runs in a subprocess, outside conftest's exact_epochs
    "train": {"epochs": 1, "batch_size": 64, "device": "cpu", "min_steps": 0},
}
N_TRIALS = 24


def _cmd(spec: Path, db: Path) -> list[str]:
    # --quiet: no bar; the resume command printed on SIGINT leaves it out (display only).
    return [sys.executable, "-m", "transferlab.cli", "sweep", str(spec), "--db", str(db),
            "--workers", "2", "--quiet"]


def _start(cmd: list[str]) -> subprocess.Popen:
    # A session of its own, so that leftovers can be found (and cleaned) by process group.
    # SIGINT back to its default: a shell running this suite in the background (`make test &`)
    # hands down SIGINT ignored, and Python keeps an inherited SIG_IGN; a user at a terminal
    # pressing Ctrl-C has the default.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _group_gone(pgid: int, within: float = 15.0) -> bool:
    """True once no process of the group is left (orphaned workers exit by themselves)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    return False


def _check_db(db: Path) -> pd.DataFrame:
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total, distinct = con.execute("SELECT count(*), count(DISTINCT key) FROM trials") \
            .fetchone()
    con.close()
    assert total == distinct == N_TRIALS
    df = load_results(db)
    assert (df["status"] == "done").all(), df.loc[df["status"] != "done", "error"].tolist()
    return df


def _table(df: pd.DataFrame) -> pd.DataFrame:
    return aggregate(df, by=["protocol", "depth"], metric="test_acc")


@pytest.fixture()
def spec_path(tmp_path) -> Path:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    return tmp_path / "spec.yaml"


def _reference(spec_path: Path) -> pd.DataFrame:
    """The same sweep uninterrupted, in this process with 1 torch thread (as each of the
    two workers has), so the numbers must match bit for bit."""
    import torch

    from transferlab.sweep import run_sweep

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(spec_path, spec_path.parent / "ref.sqlite", workers=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    return _check_db(spec_path.parent / "ref.sqlite")


def test_sweep_survives_sigkill_and_sigint(spec_path):
    rng = random.Random(1234)
    db = spec_path.parent / "interrupted.sqlite"
    cmd = _cmd(spec_path, db)
    kills = 0
    # SIGKILL: first at a random time (often while pretraining the source or starting
    # workers), then at random numbers of stored trials, each after a further random delay.
    for threshold in [None] + sorted(rng.sample(range(1, N_TRIALS // 2), 2)):
        proc = _start(cmd)
        if threshold is None:
            time.sleep(rng.uniform(0.5, 2.0))
        else:
            while _rows(db) < threshold and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
        assert _group_gone(proc.pid), "worker processes outlived their killed driver"
    assert kills >= 2, "the sweep finished before it could be killed; make it longer"

    # SIGINT: a clean stop that keeps finished trials and names the command to resume.
    before = _rows(db)
    assert before < N_TRIALS - 3
    proc = _start(cmd)
    while _rows(db) < before + 2 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    stored = _rows(db)
    assert before + 2 <= stored < N_TRIALS
    assert f"interrupted: {stored - before} trials stored this run" in err
    lines = err.splitlines()
    resume = lines[lines.index("Resume with:") + 1].strip()
    assert resume == shlex.join(["transferlab", "sweep", str(spec_path), "--db", str(db),
                                 "--workers", "2"])
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()

    # Resume with exactly the printed command (the console script is the module's main).
    res = subprocess.run([sys.executable, "-m", "transferlab.cli", *shlex.split(resume)[1:],
                          "--quiet"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    df = _check_db(db)
    reference = _reference(spec_path)
    assert set(df["key"]) == set(reference["key"])  # same source content hash, same grid
    pd.testing.assert_frame_equal(_table(df), _table(reference))
    merged = df.merge(reference, on="key", suffixes=("", "_ref"))
    assert (merged["test_acc"] == merged["test_acc_ref"]).all()
