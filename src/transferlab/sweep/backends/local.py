"""The local backend: worker processes on this machine (or the driver itself for 1 worker).

Processes start with "spawn" (or "forkserver"), never "fork": forking a process that has
torch threads or CUDA state is unsafe. Torch threads are divided so that workers x threads
never exceeds the cores, since oversubscribed intra-op threads make everything slower.

Starting a worker costs seconds (importing torch and torch._dynamo), so the pool outlives
one ``run_sweep``: the next sweep in the same process with the same workers, threads and
``TRANSFERLAB_*`` environment reuses it (a study runs three sweeps). Ctrl-C kills it;
``close_pools()`` or interpreter exit stops it.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os

from transferlab.sweep.worker import execute, init_worker


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class InlineBackend:
    """Runs each job in the calling process when asked for results (workers=1).

    Ctrl-C lands inside the running trial as KeyboardInterrupt; the driver discards it.
    """

    name = "local"

    def __init__(self) -> None:
        self.capacity = 1
        self.threads = None  # leave the caller's torch threads alone
        self._queue: list[tuple[int, dict]] = []
        self._next = 0

    def submit(self, job: dict) -> int:
        self._next += 1
        self._queue.append((self._next, job))
        return self._next

    def running(self, handles) -> int:
        return min(1, len(handles))

    def wait(self, handles, timeout: float) -> list[tuple[int, dict]]:
        if not self._queue:
            return []
        handle, job = self._queue.pop(0)
        return [(handle, execute(job))]

    def shutdown(self, kill: bool = False, handles=()) -> None:
        self._queue.clear()


class ProcessBackend:
    """``workers`` spawned processes, each with ``threads`` torch threads."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None,
                 start_method: str = "spawn", reusable: bool = False) -> None:
        self.workers = workers
        self.reusable = reusable  # a plain shutdown() keeps the processes for the next sweep
        self.threads = threads or max(1, available_cores() // workers)
        # Two jobs per worker in flight keeps every worker busy without queueing the grid.
        self.capacity = 2 * workers
        self._closed = False
        self._ctx = multiprocessing.get_context(start_method)
        self.pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx,
                                      initializer=init_worker,
                                      initargs=(self.threads, os.getpid()))

    def submit(self, job: dict) -> cf.Future:
        try:
            return self.pool.submit(execute, job)
        except cf.process.BrokenProcessPool:  # a worker died earlier: start afresh
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(execute, job)

    def running(self, handles) -> int:
        # A future also counts as running while it waits in the pool's call queue.
        return min(self.workers, sum(1 for f in handles if f.running()))

    def wait(self, handles, timeout: float) -> list[tuple[cf.Future, dict]]:
        done, _ = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for f in done:
            try:
                out.append((f, f.result()))
            except cf.process.BrokenProcessPool as exc:
                # A worker died (out of memory, killed): every job in flight is lost with it,
                # not only the culprit. The driver runs lost jobs again, once.
                out.append((f, {"status": "lost", "error": f"worker process died: {exc}"}))
        return out

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self, kill: bool = False, handles=(), force: bool = False) -> None:
        """Stop the workers; ``kill`` stops running jobs now. A reusable backend stays up on a
        plain shutdown (the sweep is over, not the process) unless ``force``."""
        if self._closed or (self.reusable and not kill and not force):
            return
        self._closed = True
        if kill:
            # Running trials are discarded, so stop their processes now rather than wait.
            # ProcessPoolExecutor has no public way to do this before Python 3.14.
            procs = list(getattr(self.pool, "_processes", {}).values())
            for proc in procs:
                proc.kill()
            for proc in procs:
                proc.join(5)
            # Waiting lets the pool notice its dead workers and release its queues (and
            # their semaphores) instead of leaking them at exit.
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.pool.shutdown(wait=True)


_POOLS: dict[tuple, ProcessBackend] = {}


def _pool_key(workers: int, threads: int | None, method: str) -> tuple:
    # Workers keep the environment and working directory they were started with.
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("TRANSFERLAB_")))
    return workers, threads, method, env, os.getcwd()


def close_pools() -> None:
    """Stop every worker pool kept for reuse (also done at interpreter exit)."""
    while _POOLS:
        _, backend = _POOLS.popitem()
        backend.shutdown(force=True)


atexit.register(close_pools)


def make_local(workers: int | None, pending: int, threads: int | None = None):
    """A backend for ``workers`` processes; 1 worker (or 1 job) runs in this process.

    An idle pool of the same shape left by an earlier sweep is reused.
    """
    if workers is None:
        workers = _default_workers()
    workers = max(1, min(workers, pending))
    if workers == 1:
        return InlineBackend()
    method = "forkserver" if os.environ.get("TRANSFERLAB_START_METHOD") == "forkserver" \
        else "spawn"
    key = _pool_key(workers, threads, method)
    backend = _POOLS.get(key)
    if backend is None or backend.closed:
        backend = _POOLS[key] = ProcessBackend(workers, threads, method, reusable=True)
    return backend


def _default_workers() -> int:
    import torch

    # One GPU: one trial at a time uses it best; on CPU one process per core, 1 thread each.
    return 1 if torch.cuda.is_available() else available_cores()
