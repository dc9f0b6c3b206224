"""What a worker runs: one job (a trial, or building a pretrained source), never raising.

Jobs are plain dicts so they pickle for any backend. A worker never touches the database:
it returns a result dict and the driver stores it, so a killed worker leaves nothing
half-written.

job = {"kind": "trial", "cfg": run_trial config, "feature_cache_dir": str | None,
       "trial_fn": "module:function" | None (tests inject a stand-in),
       "keep": ["weights", "probs"] (optional), "artifacts_dir": <db>.artifacts/<key>,
       "artifacts_root": <db>.artifacts}
job = {"kind": "source", "cfg": pretraining config, "out": checkpoint path}
job = {"kind": "group", "jobs": [trial jobs]}: trials run as one fused job
      (``transferlab.fused.run_trials_fused``); result = {"status": "group",
      "results": [one trial result per job], ...}. If the fused job fails as a whole, each
      trial runs alone, so that every row says its own outcome and cause.
result = {"status": "done" | "failed", "metrics": dict | None, "error": str | None,
          "started_at": float, "finished_at": float, "provenance": dict,
          "artifacts": {kind: path relative to artifacts_root} | None}

A source whose pretraining diverged saves no checkpoint and fails with the reason.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading
import time
import traceback


def _resolve(fn_path: str | None):
    if fn_path is None:
        from transferlab.sweep.foundation import run_trial

        return run_trial
    module, _, name = fn_path.partition(":")
    return getattr(importlib.import_module(module), name)


def _trial_result(metrics: dict, job: dict, started: float, prov: dict) -> dict:
    """A finished trial's result dict: failed when it diverged, kept outputs relative."""
    metrics = dict(metrics)
    error, artifacts = None, None
    written = metrics.pop("artifacts", None)
    status = "failed" if metrics.get("outcome") == "diverged" else "done"
    if status == "failed":
        error = f"diverged: {metrics.get('reason') or 'non-finite loss'}"
    elif written:
        artifacts = {k: os.path.relpath(v, job["artifacts_root"]) for k, v in written.items()}
    return {"status": status, "metrics": metrics, "error": error, "started_at": started,
            "finished_at": time.time(), "provenance": prov, "artifacts": artifacts}


def execute_group(job: dict) -> dict:
    """Run a group job's trials as one fused job (see the module docstring)."""
    from transferlab.provenance import provenance
    from transferlab.sweep.foundation import run_trials_fused

    started = time.time()
    jobs = job["jobs"]
    keep = tuple(jobs[0].get("keep") or ())
    try:
        out = run_trials_fused([j["cfg"] for j in jobs], keep=keep,
                               artifacts_dirs=[j.get("artifacts_dir") for j in jobs])
    except Exception:  # noqa: BLE001 - the plain path runs them and reports each cause
        results = [execute(j) for j in jobs]
    else:
        prov = provenance()
        results = [_trial_result(m, j, started, prov) for m, j in zip(out, jobs)]
    return {"status": "group", "results": results, "metrics": None, "error": None,
            "started_at": started, "finished_at": time.time(), "provenance": None}


def execute(job: dict) -> dict:
    """Run one job; exceptions become a failed result with the traceback as error text."""
    from transferlab.provenance import provenance

    if job["kind"] == "group":
        return execute_group(job)
    started = time.time()
    metrics, error, artifacts = None, None, None
    try:
        if job["kind"] == "trial":
            fn = _resolve(job.get("trial_fn"))
            # Only a trial asked to keep outputs gets the extra arguments, so stand-ins with
            # the plain (cfg, feature_cache_dir) signature keep working.
            extra = ({"keep": tuple(job["keep"]), "artifacts_dir": job["artifacts_dir"]}
                     if job.get("keep") else {})
            metrics = dict(fn(job["cfg"], job.get("feature_cache_dir"), **extra))
            written = metrics.pop("artifacts", None)
            status = "failed" if metrics.get("outcome") == "diverged" else "done"
            if status == "failed":
                error = f"diverged: {metrics.get('reason') or 'non-finite loss'}"
            elif written:
                artifacts = {k: os.path.relpath(v, job["artifacts_root"])
                             for k, v in written.items()}
        elif job["kind"] == "source":
            from transferlab.sweep.foundation import pretrain_checkpoint

            cfg = job["cfg"]
            metrics = pretrain_checkpoint(task=cfg["task"], out_path=job["out"],
                                          arch=cfg["arch"], arch_kwargs=cfg["arch_kwargs"],
                                          train=cfg["train"], seed=cfg["seed"],
                                          data_dir=cfg.get("data_dir"), save_diverged=False)
            status = "done"
            if metrics.get("outcome") == "diverged":
                status = "failed"
                error = f"diverged: {metrics.get('reason') or 'non-finite loss'}"
        else:
            raise ValueError(f"unknown job kind {job['kind']!r}")
    except Exception as exc:  # a failing trial is recorded; the sweep goes on
        status = "failed"
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=20)}"
    return {"status": status, "metrics": metrics, "error": error, "started_at": started,
            "finished_at": time.time(), "provenance": provenance(), "artifacts": artifacts}


def _exit_when_orphaned(parent: int) -> None:
    """A killed driver cannot stop its workers: they notice the new parent and exit."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def _exit_now() -> None:
    """Skip interpreter teardown (seconds with torch loaded): a worker holds no state."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def init_worker(threads: int, parent_pid: int, gpu_slots=None, gpus: int = 0) -> None:
    """Process-pool initializer: share the cores, leave Ctrl-C to the driver; with several
    GPUs, take the next slot number from ``gpu_slots`` (a shared counter) and make GPU
    slot mod ``gpus`` this process's current device."""
    # The terminal sends SIGINT to the whole process group; the driver decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Watch the process that started us: the driver under "spawn", the fork server (which
    # exits with the driver) under "forkserver". ``parent_pid`` is the driver's, for the log.
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    # Runs first at exit (atexit is last-in, first-out), after the pool said goodbye.
    atexit.register(_exit_now)
    # tqdm would create a multiprocessing lock (a named semaphore) that a worker killed on
    # Ctrl-C cannot release; workers draw no shared bars, so a thread lock does.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    import torch

    torch.set_num_threads(max(1, threads))
    if gpu_slots is not None and gpus > 1:
        from transferlab.sweep.backends.gpu import pin_to_gpu, take_slot

        pin_to_gpu(take_slot(gpu_slots), gpus)
    # torch.optim imports torch._dynamo on first use (seconds): pay it here, once, so
    # that no trial's duration depends on whether it was its worker's first.
    import torch._dynamo  # noqa: F401

    import transferlab.api  # noqa: F401
