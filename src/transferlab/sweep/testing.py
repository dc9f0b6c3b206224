"""A stand-in for ``run_trial``, for testing the sweep engine without training.

Pass ``trial_fn="transferlab.sweep.testing:fake_trial"`` to ``run_sweep``. It lives in the
package (not under tests/) so that worker processes and Ray tasks can import it.
"""

from __future__ import annotations

import hashlib
import json

CALLS: list[dict] = []  # configs seen in this process (for counting runs in-process)
FAIL: dict = {}  # {"protocol": "freeze:2", "seed": 1, "how": "raise" | "diverge"}


def fake_trial(cfg: dict, feature_cache_dir: str | None = None, progress: bool = False,
               **_kept) -> dict:
    """Deterministic metrics derived from the config; fails as ``FAIL`` says."""
    CALLS.append(cfg)
    match = FAIL and all(cfg.get(k) == v for k, v in FAIL.items() if k != "how")
    if match and FAIL.get("how", "raise") == "raise":
        raise RuntimeError(f"injected failure for {cfg['protocol']} seed {cfg['seed']}")
    digest = hashlib.sha256(json.dumps({k: cfg[k] for k in ("protocol", "seed", "task")},
                                       sort_keys=True).encode()).digest()
    acc = digest[0] / 255
    return {"test_acc": acc, "test_nll": 1 - acc, "val_acc": acc, "outcome":
            "diverged" if match else "ok", "reason": "loss is nan at epoch 1" if match else ""}


def pid_trial(cfg: dict, feature_cache_dir: str | None = None, progress: bool = False,
              **_kept) -> dict:
    """``fake_trial`` plus the id of the process that ran it (for testing worker reuse)."""
    import os

    return {**fake_trial(cfg, feature_cache_dir, progress), "worker_pid": os.getpid()}


def slow_trial(cfg: dict, feature_cache_dir: str | None = None, progress: bool = False,
               **_kept) -> dict:
    """``pid_trial`` after ``cfg["seconds"]`` (default 30) of short sleeps: a trial to stop."""
    import time

    end = time.monotonic() + float(cfg.get("seconds", 30))
    while time.monotonic() < end:
        time.sleep(0.02)
    return pid_trial(cfg, feature_cache_dir, progress)


def paced_trial(cfg: dict, feature_cache_dir: str | None = None, progress: bool = False,
                **_kept) -> dict:
    """``fake_trial`` after ``$TRANSFERLAB_TEST_TRIAL_SECONDS`` (default 1) seconds: a sweep
    that stays running for a known time, however fast the machine is."""
    import os
    import time

    time.sleep(float(os.environ.get("TRANSFERLAB_TEST_TRIAL_SECONDS", "1")))
    return fake_trial(cfg, feature_cache_dir, progress)
