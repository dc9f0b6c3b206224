"""The Ray backend: each job is a Ray remote task; only the driver writes the database.

Ray is optional (``pip install transferlab[ray]``) and imported only when asked for. Paths
in jobs (checkpoints, the feature cache) must be visible to every node: on a cluster, put
the database on a shared file system.

On a cluster with GPUs, each trial asks Ray for ``1 / workers_per_gpu`` of a GPU, so that
Ray places ``workers_per_gpu`` trials on each GPU (and sets ``CUDA_VISIBLE_DEVICES`` for
each); ``workers_per_gpu`` defaults as for the local backend (sweep/backends/gpu.py) when
the driver sees a GPU, else 1.
"""

from __future__ import annotations

from transferlab.errors import UserError
from transferlab.sweep.worker import execute


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UserError("--backend=ray needs Ray, which is not installed: allowed backends "
                        "here are 'local'; run `pip install transferlab[ray]` or use "
                        "--backend local") from exc
    return ray


def _ray_execute(job: dict) -> dict:
    """A remote task: use the CPUs Ray gave this task as torch threads, then run the job."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    return execute(job)


def resource_request(resources: dict, threads: int, workers_per_gpu: int | None) -> dict:
    """``ray.remote`` options of one trial: ``threads`` CPUs, and on a cluster with GPUs
    (``resources["GPU"] > 0``) ``num_gpus = 1 / workers_per_gpu``."""
    from transferlab.sweep.backends.gpu import resolve_workers_per_gpu

    per_gpu = resolve_workers_per_gpu(workers_per_gpu)  # checked even without GPUs
    options = {"num_cpus": threads, "max_retries": 0}
    if resources.get("GPU", 0) > 0:
        options["num_gpus"] = 1 / per_gpu
    return options


class RayBackend:
    """Submit jobs to a Ray cluster (``address``: 'auto', 'HOST:PORT' or None = local)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 threads: int = 1, workers_per_gpu: int | None = None) -> None:
        ray = self.ray = _import_ray()
        self._owns = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         ignore_reinit_error=True)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise UserError(f"--address={address!r} is invalid: no Ray cluster answered "
                                f"({exc}); allowed are 'auto', HOST:PORT of a running cluster "
                                "(start one with `ray start --head`), or leave --address out "
                                "for a local Ray") from exc
            self._owns = True
        resources = ray.cluster_resources()
        self.threads = max(1, threads)
        self.options = resource_request(resources, self.threads, workers_per_gpu)
        slots = max(1, int(resources.get("CPU", 1)) // self.threads)
        if "num_gpus" in self.options:  # GPU trials: as many at once as the GPUs hold
            slots = min(slots, max(1, round(resources["GPU"] / self.options["num_gpus"])))
        self.capacity = workers or slots
        self._slots = slots
        self._remote = ray.remote(**self.options)(_ray_execute)

    def submit(self, job: dict):
        return self._remote.remote(job)

    def running(self, handles) -> int:
        return min(len(handles), self._slots)

    def wait(self, handles, timeout: float) -> list[tuple[object, dict]]:
        ray = self.ray
        handles = list(handles)
        if not handles:
            return []
        ready, _ = ray.wait(handles, num_returns=len(handles), timeout=timeout)
        if not ready:
            return []
        out = []
        for ref in ready:
            try:
                out.append((ref, ray.get(ref)))
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.TaskCancelledError) as exc:
                out.append((ref, {"status": "lost", "error": f"Ray worker lost: {exc}"}))
            except ray.exceptions.RayError as exc:
                out.append((ref, {"status": "failed", "metrics": None, "error": str(exc),
                                  "started_at": None, "finished_at": None,
                                  "provenance": None}))
        return out

    def shutdown(self, kill: bool = False, handles=()) -> None:
        if kill:
            for ref in handles:
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # already finished or gone
                    pass
        # A Ray instance we started is ours to stop; one we joined belongs to someone else.
        if self._owns:
            self.ray.shutdown()
