"""``run_sweep``: validate, build the sources, run the missing trials, store each one.

The driver alone writes the database, one transaction per finished trial, so a sweep can
be killed at any moment: what finished is kept, what was running is simply run again. It
holds the database's driver lock (``lock.py``) from before any worker starts to the end, so
a second driver is refused instead of running the same missing trials.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from pathlib import Path

import pandas as pd

from transferlab.errors import UserError
from transferlab.sweep import cache as sweep_cache
from transferlab.sweep import foundation as fd
from transferlab.sweep.artifacts import artifacts_root, check_keep, prune_artifacts
from transferlab.sweep.backends import check_workers, make_backend
from transferlab.sweep.backends.gpu import check_workers_per_gpu
from transferlab.sweep.grid import Plan, plan_sweep
from transferlab.sweep.lock import DriverLock
from transferlab.sweep.results import frame_from_rows
from transferlab.sweep.store import Store, check_store_file, trial_key

DEFAULT_CACHE_LIMIT_GB = 4.0
# Bump when what a trial key hashes changes meaning (2: the target's data fingerprint).
KEY_VERSION = 2
# Fields of the trial config that say where things are, not what they are: not hashed.
LOCATION_FIELDS = ("source", "data_dir")


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep: ``finished`` trials were stored, ``discarded`` were not."""

    def __init__(self, db_path: str, finished: int, discarded: int, remaining: int):
        super().__init__(f"sweep interrupted: {finished} trials stored this run, {discarded} "
                         f"unfinished discarded, {remaining} still to run")
        self.db_path, self.finished = db_path, finished
        self.discarded, self.remaining = discarded, remaining


def key_config(cfg: dict) -> dict:
    """The part of a trial config that defines it (location fields dropped)."""
    return {k: v for k, v in cfg.items() if k not in LOCATION_FIELDS}


@contextlib.contextmanager
def _defer_sigint():
    """Hold Ctrl-C while a trial is written, so a finished trial is never rolled back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = signal.signal(signal.SIGINT, lambda *_: caught.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if caught and old not in (signal.SIG_IGN, None):
            raise KeyboardInterrupt


class _Bar:
    """tqdm over trials with done / running / failed in the postfix (ETA is tqdm's)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="trial",
                            dynamic_ncols=True, smoothing=0.1)

    def update(self, n: int, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)  # redraws at most every mininterval

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _drive(backend, jobs: list[dict], on_result, bar: _Bar, counts: dict,
           discarded: list[int]) -> None:
    """Keep ``backend.capacity`` jobs in flight; call ``on_result(job, result)`` per job.

    A job whose worker died with others in flight ("lost") runs again once.
    """
    queue, inflight = deque(jobs), {}
    try:
        while queue or inflight:
            while queue and len(inflight) < backend.capacity:
                job = queue.popleft()
                inflight[backend.submit(job)] = job
            for handle, result in backend.wait(list(inflight), timeout=0.5):
                job = inflight.pop(handle)
                if result["status"] == "lost" and not job.get("_retried"):
                    queue.append({**job, "_retried": True})
                    continue
                if result["status"] == "lost":
                    result = {"status": "failed", "metrics": None, "error": result["error"],
                              "started_at": None, "finished_at": None, "provenance": None}
                on_result(job, result)
            counts["running"] = backend.running(list(inflight))
            bar.update(0, **counts)
    except KeyboardInterrupt:
        discarded[0] = len(inflight)
        backend.shutdown(kill=True, handles=list(inflight))
        raise


def _build_sources(plan: Plan, db_path: Path, backend, progress: bool, store: Store,
                   retry_failed: bool) -> dict:
    """``{(source name, trial seed): {"path": checkpoint} | {"failed": source key, "error":
    message}}``; pretrains what is not cached and stores each pretraining's outcome.

    A failed pretraining (an exception, or a diverged loss: no checkpoint is saved then) is
    stored in the ``sources`` table and not retried unless ``retry_failed``; the trials that
    need it are failed by the caller with a message naming it.
    """
    seeds = sorted({c.seed for c in plan.cells})
    out, jobs = {}, {}
    stored = store.sources()
    for name, src in plan.sources.items():
        for seed in seeds:
            if src.checkpoint is not None:
                out[(name, seed)] = {"path": src.checkpoint}
                continue
            cfg = src.pretrain_config(seed, plan.data_dir)  # holds its data's fingerprint
            path = sweep_cache.source_path(db_path, cfg)
            skey = path.parent.name
            rec = stored.get(skey)
            if sweep_cache.source_ready(path):
                out[(name, seed)] = {"path": str(path)}
            elif rec and rec["status"] == "failed" and not retry_failed:
                out[(name, seed)] = {"failed": skey, "error": rec["error"]}
            else:
                out[(name, seed)] = {"path": str(path)}
                jobs[str(path)] = {"kind": "source", "cfg": cfg, "out": str(path), "name": name,
                                   "seed": cfg["seed"], "skey": skey}
    if jobs:
        counts = {"done": 0, "failed": 0, "running": 0}
        bar = _Bar(progress, len(jobs), 0, "sources")
        failed: dict[str, str] = {}

        def on_result(job, result):
            ok = result["status"] == "done"
            counts["done" if ok else "failed"] += 1
            bar.update(1, **counts)
            error = None if ok else (result["error"] or "unknown error").splitlines()[0]
            with _defer_sigint():
                store.put_source(job["skey"], job["name"], job["cfg"], result["status"],
                                 result["metrics"], error)
            if not ok:
                failed[job["out"]] = error

        try:
            _drive(backend, list(jobs.values()), on_result, bar, counts, [0])
        finally:
            bar.close()
        for k, v in out.items():
            if v.get("path") in failed:
                out[k] = {"failed": jobs[v["path"]]["skey"], "error": failed[v["path"]]}
    return out


def _source_failure(name: str, seed: int, entry: dict) -> str:
    """The error stored for a trial whose source could not be pretrained."""
    return (f"source {name!r} (trial seed {seed}) failed to pretrain, and this trial needs it: "
            f"{entry['error']}; fix sources.{name}.pretrain (e.g. a lower lr), then run the "
            "sweep again (a changed recipe is a new source; --retry-failed retries this one)")


def _fused_jobs(jobs: list[dict], fuse: bool | None) -> list[dict]:
    """Trial jobs with those of one fused group (``foundation.fuse_group``) merged into
    group jobs of at most ``FUSE_MAX_TRIALS``; each trial is still stored as its own row."""
    if fuse is False:
        return jobs
    out, groups = [], {}
    for job in jobs:
        group = None if job.get("trial_fn") else fd.fuse_group(job["cfg"], fuse)
        if group is None:
            out.append(job)
        else:
            groups.setdefault(group, []).append(job)
    for members in groups.values():
        for i in range(0, len(members), fd.FUSE_MAX_TRIALS):
            chunk = members[i:i + fd.FUSE_MAX_TRIALS]
            out.append(chunk[0] if len(chunk) == 1 else {"kind": "group", "jobs": chunk})
    return out


def run_sweep(spec, db_path: str | os.PathLike, backend: str = "local",
              workers: int | None = None, address: str | None = None,
              retry_failed: bool = False, progress: bool = True,
              cache_limit_gb: float | None = DEFAULT_CACHE_LIMIT_GB,
              trial_fn: str | None = None,
              keep: list[str] | str | None = None,
              fuse: bool | None = None,
              workers_per_gpu: int | None = None) -> pd.DataFrame:
    """Run every trial of ``spec`` not yet stored in ``db_path``; return this sweep's rows.

    Args:
        spec: a ``SweepSpec``, a dict, or a YAML file path (see docs/sweeps.md).
        db_path: the SQLite store (created if missing); the cache lives at ``<db>.cache/``.
        backend: "local" (processes) or "ray"; ``workers`` processes / jobs in flight.
        retry_failed: run failed trials again (otherwise they count as finished).
        cache_limit_gb: bound on the frozen-prefix feature cache (None: unbounded,
            0: no feature cache).
        trial_fn: "module:function" standing in for ``run_trial`` (for tests).
        keep: trial outputs to keep, "weights" and/or "probs" (added to the spec's
            ``keep``); stored trials that lack them run again. See ``load_trial_model``.
        fuse: run trials that differ only by seed, lr, lr_mult or depth as one fused job
            (``transferlab.train.fused``); None: for trials that train on CUDA only.
            Keys, rows and resume are the same either way.
        workers_per_gpu: trials in flight on each GPU (default: ``$TRANSFERLAB_WORKERS_PER_GPU``
            or a rule from the GPU's free memory, sweep/backends/gpu.py); with CUDA and
            ``workers=None`` the local backend runs this many x the GPUs; Ray asks for
            1 / workers_per_gpu of a GPU per trial.
    Returns: one row per trial of this sweep (see ``load_results`` for the columns).
    Raises: ``UserError`` for a bad spec or database, or a database another sweep is
        driving (before anything runs or is written); ``SweepInterrupted`` on Ctrl-C after
        storing what finished.
    """
    check_workers_per_gpu(workers_per_gpu)  # an option slip before the spec's problems
    plan = plan_sweep(spec)
    keep_kinds = tuple(sorted(set(plan.spec.keep) | set(check_keep(keep, "--keep"))))
    db_path = Path(db_path)
    check_store_file(db_path)
    # Jobs carry absolute paths: Ray workers need not share the driver's working directory.
    feat_dir = sweep_cache.features_dir(db_path.resolve())
    art_root = artifacts_root(db_path.resolve())
    limit = None if cache_limit_gb is None else int(cache_limit_gb * 2**30)
    check_workers(workers)  # every argument is checked before the lock file is created
    lock = DriverLock(db_path).acquire()  # before any worker starts or anything is written
    stored, discarded = 0, [0]
    remaining = len(plan.cells)
    try:
        be = make_backend(backend, workers, max(1, len(plan.cells)), address,
                          workers_per_gpu=workers_per_gpu)
    except BaseException:
        lock.release()
        raise
    try:
        with Store(db_path) as store:
            store.record_sweep(plan.spec.name, plan.spec.model_dump(mode="json"))
            paths = _build_sources(plan, db_path.resolve(), be, progress, store, retry_failed)
            shas = {v["path"]: fd.checkpoint_sha256(v["path"]) for v in paths.values()
                    if "path" in v}
            trials: dict[str, dict] = {}
            for cell in plan.cells:
                src = paths[(cell.source, cell.seed)]
                cfg = {"source": src.get("path"), "source_sha256": shas.get(src.get("path")),
                       "task": cell.task, "task_fingerprint": plan.fingerprint(cell.task),
                       "key_version": KEY_VERSION, "protocol": cell.protocol, "seed": cell.seed,
                       "train": cell.train, "data_dir": plan.data_dir}
                if "failed" in src:  # no checkpoint: keyed by the failed recipe instead
                    cfg["source_failed"] = src["failed"]
                trials.setdefault(trial_key(key_config(cfg)), {
                    "cfg": cfg, "labels": cell.labels,
                    "source_error": _source_failure(cell.source, cell.seed, src)
                    if "failed" in src else None})
            status = store.statuses()
            kept = store.artifacts() if keep_kinds else {}
            skip = {"done"} if retry_failed else {"done", "failed"}

            def lacks_outputs(k: str) -> bool:  # done, but without the outputs now asked for
                return status.get(k) == "done" and not set(keep_kinds) <= set(kept.get(k) or {})

            todo = [k for k in trials if status.get(k) not in skip or
                    (keep_kinds and lacks_outputs(k))]
            todo_set = set(todo)
            remaining = len(todo)
            counts = {"done": sum(status.get(k) == "done" for k in trials if k not in todo_set),
                      "failed": sum(status.get(k) == "failed" for k in trials
                                    if k not in todo_set), "running": 0}
            bar = _Bar(progress, len(trials), len(trials) - len(todo), plan.spec.name)
            use_cache = limit is None or limit > 0
            # Trials whose source failed to pretrain are stored failed at once, naming it.
            for k in [k for k in todo if trials[k]["source_error"]]:
                now = time.time()
                with _defer_sigint():
                    store.put(k, plan.spec.name, trials[k]["labels"], trials[k]["cfg"],
                              "failed", None, trials[k]["source_error"], now, now, None)
                stored += 1
                remaining -= 1
                counts["failed"] += 1
                bar.update(1, **counts)
            todo = [k for k in todo if not trials[k]["source_error"]]
            jobs = [{"kind": "trial", "key": k, "cfg": trials[k]["cfg"], "trial_fn": trial_fn,
                     "feature_cache_dir": str(feat_dir) if use_cache else None,
                     **({"keep": list(keep_kinds), "artifacts_dir": str(art_root / k),
                         "artifacts_root": str(art_root)} if keep_kinds else {})}
                    for k in todo]
            jobs = _fused_jobs(jobs, fuse)
            last_prune = [time.monotonic()]

            def on_result(job, result):
                nonlocal stored, remaining
                if job["kind"] == "group":  # a fused job: one row per trial
                    subs = result["results"] if result["status"] == "group" \
                        else [result] * len(job["jobs"])  # its process died: all failed
                    for j, r in zip(job["jobs"], subs):
                        on_result(j, r)
                    return
                t = trials[job["key"]]
                with _defer_sigint():
                    store.put(job["key"], plan.spec.name, t["labels"], t["cfg"],
                              result["status"], result["metrics"], result["error"],
                              result["started_at"] or time.time(),
                              result["finished_at"] or time.time(), result["provenance"],
                              result.get("artifacts"))
                stored += 1
                remaining -= 1
                counts["done" if result["status"] == "done" else "failed"] += 1
                bar.update(1, **counts)
                if use_cache and time.monotonic() - last_prune[0] > 30:
                    sweep_cache.prune_features(feat_dir, limit)
                    last_prune[0] = time.monotonic()

            try:
                _drive(be, jobs, on_result, bar, counts, discarded)
            finally:
                bar.close()
            if use_cache:
                sweep_cache.prune_features(feat_dir, limit)
            # Outputs of trials no row refers to (killed before stored, failed): removed.
            prune_artifacts(db_path, store.artifacts().values())
            rows = {r["key"]: r for r in store.rows(trials)}
    except KeyboardInterrupt:
        be.shutdown(kill=True)
        raise SweepInterrupted(str(db_path), stored, discarded[0], remaining) from None
    finally:
        be.shutdown()
        lock.release()
    for key, r in rows.items():  # this sweep's own labels, even for trials stored by another
        r["labels"] = trials[key]["labels"]
    return frame_from_rows([rows[k] for k in trials if k in rows])
