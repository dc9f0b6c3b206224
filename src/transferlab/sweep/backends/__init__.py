"""Where trials run: ``local`` (processes on this machine) or ``ray`` (a Ray cluster).

Every backend has the same small interface, used only by the sweep driver:
``capacity`` (jobs to keep in flight), ``threads``, ``submit(job) -> handle``,
``wait(handles, timeout) -> [(handle, result)]``, ``running(handles) -> int`` and
``shutdown(kill=False, handles=())``.
"""

from __future__ import annotations

from transferlab.errors import UserError

BACKENDS = ("local", "ray")


def check_workers(workers: int | None) -> None:
    """``--workers``: None (a default) or an integer >= 1; checked before anything runs."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise UserError(f"--workers={workers} is invalid: allowed is an integer >= 1; "
                        "leave it out for one worker per core")


def make_backend(name: str, workers: int | None, pending: int, address: str | None = None,
                 workers_per_gpu: int | None = None):
    """Build backend ``name`` for ``pending`` jobs (``workers=None``: a sensible default;
    ``workers_per_gpu``: trials sharing one GPU, see backends/gpu.py)."""
    from transferlab.sweep.backends.gpu import check_workers_per_gpu

    check_workers(workers)
    check_workers_per_gpu(workers_per_gpu)
    if name == "local":
        if address is not None:
            raise UserError(f"--address={address!r} is invalid with --backend local: allowed "
                            "only with --backend ray; drop --address or add --backend ray")
        from transferlab.sweep.backends.local import make_local

        return make_local(workers, pending, workers_per_gpu=workers_per_gpu)
    if name == "ray":
        from transferlab.sweep.backends.ray_backend import RayBackend

        return RayBackend(address=address, workers=workers, workers_per_gpu=workers_per_gpu)
    raise UserError(f"--backend={name!r} is invalid: allowed are {', '.join(BACKENDS)}; "
                    "use local (default) or ray")
