"""Several trials in flight on one GPU: how many, and which GPU each worker uses.

A trial of the built-in models on an MNIST- or CIFAR-sized task launches a few dozen
kernels of microseconds per optimiser step: one trial alone leaves most of a large GPU idle
while its process prepares the next launch. Running several trials at once, each in its
own process (its own CUDA context and stream), fills the gaps.

The default number of trials per GPU (``default_workers_per_gpu``) is the smallest of:

* ``floor(MEMORY_SHARE x free memory / TRIAL_BYTES)`` on the GPU with the least free memory
  (``torch.cuda.mem_get_info``), so that the trials' memory fits with room to spare;
* the CPU cores per GPU (each trial's process needs a core to launch its kernels);
* ``MAX_WORKERS_PER_GPU``; and at least 1.

``TRIAL_BYTES`` is an estimate of one trial's device memory: its process's CUDA context
(about 0.5 GiB) plus the caching allocator's reservations for the model, optimiser state,
activations and the task's tensors; 2 GiB is generous for the built-in archs on tasks of up
to some 10^5 small images, small for a large wrapped model: pass ``workers_per_gpu``
(``--workers-per-gpu``, or ``$TRANSFERLAB_WORKERS_PER_GPU``) for those.
"""

from __future__ import annotations

import os

from transferlab.errors import UserError

WORKERS_PER_GPU_ENV = "TRANSFERLAB_WORKERS_PER_GPU"
TRIAL_BYTES = 2 * 2**30
MEMORY_SHARE = 0.8  # of the free memory; the rest for fragmentation and other processes
MAX_WORKERS_PER_GPU = 8


def check_workers_per_gpu(value: int | None, name: str = "--workers-per-gpu") -> None:
    """None (the default rule) or an integer >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise UserError(f"{name}={value!r} is invalid: allowed is an integer >= 1; leave it "
                        "out for a default from the GPU's free memory (docs/sweeps.md)")


def _from_env() -> int | None:
    text = os.environ.get(WORKERS_PER_GPU_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = text  # reported below with the variable's name
    check_workers_per_gpu(value, f"${WORKERS_PER_GPU_ENV}")
    return value


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without CUDA); creates no CUDA context."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_workers_per_gpu(trial_bytes: int = TRIAL_BYTES, cores: int | None = None,
                            gpus: int | None = None) -> int:
    """The rule in this module's docstring (1 without a GPU)."""
    import torch

    from transferlab.sweep.backends.local import available_cores

    gpus = gpu_count() if gpus is None else gpus
    if gpus < 1:
        return 1
    try:
        free = min(torch.cuda.mem_get_info(i)[0] for i in range(gpus))
    except RuntimeError:  # a busy or exclusive-mode GPU that refuses a context: be modest
        return 1
    by_memory = int(MEMORY_SHARE * free // max(1, trial_bytes))
    by_cores = (available_cores() if cores is None else cores) // gpus
    return max(1, min(by_memory, by_cores, MAX_WORKERS_PER_GPU))


def resolve_workers_per_gpu(workers_per_gpu: int | None) -> int:
    """The argument if given, else ``$TRANSFERLAB_WORKERS_PER_GPU``, else the default rule."""
    check_workers_per_gpu(workers_per_gpu)
    if workers_per_gpu is not None:
        return workers_per_gpu
    env = _from_env()
    return env if env is not None else default_workers_per_gpu()


def take_slot(counter) -> int:
    """The next slot number from a shared ``multiprocessing.Value("i")`` (one per worker)."""
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    return slot


def pin_to_gpu(slot: int, gpus: int) -> int | None:
    """Make GPU ``slot % gpus`` this process's current device (``cuda`` means it from now
    on); nothing on a machine with one GPU or none. Returns the index chosen, or None."""
    if gpus < 2:
        return None
    import torch

    index = slot % gpus
    torch.cuda.set_device(index)
    return index
