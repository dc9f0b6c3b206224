"""The local backend: trials on this machine, in worker processes and the driver itself.

With ``workers=N`` (N >= 2) N trials run at once: N-1 in worker processes and one in a
thread of the driver process, which otherwise only waits. Starting a worker costs seconds
(importing torch and torch._dynamo): the driver's slot starts at once and saves one such
start per sweep, which on a few cores is a good share of a short sweep. A trial that
crashes its process (out of memory, a segfault) then may take the driver with it; every
finished trial is stored, so rerunning the command resumes. ``TRANSFERLAB_DRIVER_TRIALS=0``
keeps every trial in a worker process. With ``workers=1`` the driver runs every trial.

Processes start with "spawn" (or "forkserver"), never "fork": forking a process that has
torch threads or CUDA state is unsafe. Torch threads are divided so that trials x threads
never exceeds the cores, since oversubscribed intra-op threads make everything slower.

The pool outlives one ``run_sweep``: the next sweep in the same process with the same
workers, threads and ``TRANSFERLAB_*`` environment reuses it (a study runs three sweeps).
Ctrl-C kills it; ``close_pools()`` or interpreter exit stops it.

With CUDA, the default is ``workers_per_gpu`` trials per visible GPU (sweep/backends/gpu.py:
a rule from the GPU's free memory and the cores). On a machine with several GPUs, slot k
(the driver's slot is 0, worker processes take 1, 2, ... as they start) makes GPU
k mod #GPUs its current device, so ``cuda`` in a trial means that GPU.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import threading
from collections import deque

from transferlab.sweep.backends.gpu import check_workers_per_gpu, gpu_count, \
    resolve_workers_per_gpu
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
        import torch

        with torch.random.fork_rng(devices=[]):  # trials seed torch; the caller's RNG stays
            return [(handle, execute(job))]

    def shutdown(self, kill: bool = False, handles=()) -> None:
        self._queue.clear()


class _Stopped(BaseException):
    """Raised inside the driver's trial thread by a kill (Ctrl-C): the trial is discarded."""


def _lost(error: str) -> dict:
    return {"status": "lost", "error": error}


class ProcessBackend:
    """``workers`` trials at a time, each with ``threads`` torch threads: ``workers - 1``
    spawned processes plus a thread of the driver (``driver_slot=False``: ``workers``
    processes)."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None,
                 start_method: str = "spawn", reusable: bool = False,
                 driver_slot: bool = True, gpus: int = 0) -> None:
        self.workers = workers
        self.reusable = reusable  # a plain shutdown() keeps the processes for the next sweep
        self.threads = threads or max(1, available_cores() // workers)
        # Two jobs per worker in flight keeps every worker busy without queueing the grid.
        self.capacity = 2 * workers
        self._closed = False
        self._ctx = multiprocessing.get_context(start_method)
        self._driver_slot = driver_slot and workers > 1
        self._procs = workers - 1 if self._driver_slot else workers
        # Slot numbers for pinning workers to GPUs (gpu.pin_to_gpu); the driver's is 0.
        self.gpus = gpus
        self._gpu_slots = self._ctx.Value("i", int(self._driver_slot)) if gpus > 1 else None
        self.pool = self._new_pool()
        # Jobs wait here until a slot is free, so that the driver's thread and the
        # processes take the next job whenever they are done (no queue per slot).
        self._pending: deque[tuple[cf.Future, dict]] = deque()
        self._lock = threading.Lock()
        self._free = {"driver": int(self._driver_slot), "pool": self._procs}
        self._here: cf.ThreadPoolExecutor | None = None
        self._here_ident: int | None = None
        self._here_future: cf.Future | None = None
        self._saved: tuple | None = None  # the driver's torch threads and RNG, during a sweep

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self._procs, mp_context=self._ctx,
                                      initializer=init_worker,
                                      initargs=(self.threads, os.getpid(), self._gpu_slots,
                                                self.gpus))

    def submit(self, job: dict) -> cf.Future:
        outer: cf.Future = cf.Future()
        self._pending.append((outer, job))
        self._dispatch()
        return outer

    def _dispatch(self) -> None:
        """Start pending jobs on free slots (called from the driver's thread only)."""
        while self._pending:
            with self._lock:
                where = next((w for w in ("driver", "pool") if self._free[w]), None)
                if where is None:
                    return
                self._free[where] -= 1
            outer, job = self._pending.popleft()
            outer.set_running_or_notify_cancel()
            inner = self._run_in_driver(job) if where == "driver" else self._run_in_pool(job)
            inner.add_done_callback(lambda f, o=outer, w=where: self._finished(f, o, w))

    def _run_in_pool(self, job: dict) -> cf.Future:
        try:
            return self.pool.submit(execute, job)
        except cf.process.BrokenProcessPool:  # a worker died earlier: start afresh
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            return self.pool.submit(execute, job)

    def _run_in_driver(self, job: dict) -> cf.Future:
        import torch

        if self._saved is None:  # the sweep's first trial here: give it a worker's threads
            self._saved = (torch.get_num_threads(), torch.random.get_rng_state())
            torch.set_num_threads(self.threads)
        if self._here is None:
            self._here = cf.ThreadPoolExecutor(1, thread_name_prefix="transferlab-trial")
        self._here_future = self._here.submit(self._execute_here, job)
        return self._here_future

    def _execute_here(self, job: dict) -> dict:
        with self._lock:
            self._here_ident = threading.get_ident()
        try:
            return execute(job)
        finally:
            with self._lock:  # a kill holding the lock sees the ident only while in here
                self._here_ident = None

    def _finished(self, inner: cf.Future, outer: cf.Future, where: str) -> None:
        with self._lock:
            self._free[where] += 1
        try:
            result = inner.result()
        except cf.process.BrokenProcessPool as exc:
            # A worker died (out of memory, killed): every job in flight is lost with it,
            # not only the culprit. The driver runs lost jobs again, once.
            result = _lost(f"worker process died: {exc}")
        except BaseException as exc:  # noqa: BLE001 - _Stopped on a kill, or a pickling error
            result = _lost(f"{type(exc).__name__}: {exc}")
        if not outer.done():
            outer.set_result(result)

    def running(self, handles) -> int:
        return min(self.workers, sum(1 for f in handles if f.running()))

    def wait(self, handles, timeout: float) -> list[tuple[cf.Future, dict]]:
        self._dispatch()
        done, _ = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return [(f, f.result()) for f in done]

    @property
    def closed(self) -> bool:
        return self._closed

    def _restore_driver(self) -> None:
        if self._saved is not None:
            import torch

            threads, rng = self._saved
            torch.set_num_threads(threads)
            torch.random.set_rng_state(rng)
            self._saved = None

    def shutdown(self, kill: bool = False, handles=(), force: bool = False) -> None:
        """Stop the workers; ``kill`` stops running jobs now. A reusable backend stays up on a
        plain shutdown (the sweep is over, not the process) unless ``force``."""
        self._pending.clear()
        if kill:
            with self._lock:
                if self._here_ident is not None:  # stop the driver's trial at its next step
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self._here_ident), ctypes.py_object(_Stopped))
            if self._here_future is not None:  # it stops within one step; then restore
                cf.wait([self._here_future], timeout=5)
        self._restore_driver()
        if self._closed or (self.reusable and not kill and not force):
            return
        self._closed = True
        if self._here is not None:
            self._here.shutdown(wait=not kill, cancel_futures=True)
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


def _pool_key(workers: int, threads: int | None, method: str, gpus: int = 0) -> tuple:
    # Workers keep the environment and working directory they were started with.
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("TRANSFERLAB_")))
    return workers, threads, method, env, os.getcwd(), gpus


def close_pools() -> None:
    """Stop every worker pool kept for reuse (also done at interpreter exit)."""
    while _POOLS:
        _, backend = _POOLS.popitem()
        backend.shutdown(force=True)


atexit.register(close_pools)


def make_local(workers: int | None, pending: int, threads: int | None = None,
               workers_per_gpu: int | None = None):
    """A backend running ``workers`` trials at a time; 1 worker (or 1 job): in this process.

    ``workers=None``: ``workers_per_gpu`` x the visible GPUs with CUDA (its default: the
    rule of sweep/backends/gpu.py), else one per core. An idle pool of the same shape left
    by an earlier sweep is reused.
    """
    check_workers_per_gpu(workers_per_gpu)
    gpus = gpu_count()
    if workers is None:
        workers = _default_workers(workers_per_gpu, gpus)
    workers = max(1, min(workers, pending))
    if workers == 1:
        return InlineBackend()
    method = "forkserver" if os.environ.get("TRANSFERLAB_START_METHOD") == "forkserver" \
        else "spawn"
    driver_slot = os.environ.get("TRANSFERLAB_DRIVER_TRIALS", "1") != "0"
    key = _pool_key(workers, threads, method, gpus)  # TRANSFERLAB_DRIVER_TRIALS is in it
    backend = _POOLS.get(key)
    if backend is None or backend.closed:
        backend = _POOLS[key] = ProcessBackend(workers, threads, method, reusable=True,
                                               driver_slot=driver_slot, gpus=gpus)
    return backend


def _default_workers(workers_per_gpu: int | None = None, gpus: int | None = None) -> int:
    # With GPUs: several trials on each (one alone leaves a large GPU mostly idle, see
    # gpu.py); on CPU one process per core, 1 thread each.
    gpus = gpu_count() if gpus is None else gpus
    return gpus * resolve_workers_per_gpu(workers_per_gpu) if gpus else available_cores()
