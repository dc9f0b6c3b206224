"""Task tensors kept on an accelerator once per process; trials get their batches by index.

A sweep runs many trials on one target task. Without this memo every trial copies the whole
task from host memory to the GPU (``Task.to``), which on a small task costs as much as a
short trial's first epochs and, with several trials in flight, several copies of the data.
Here the first trial on a device moves the task there and later trials get a device-side
copy of it (a device-to-device copy: microseconds, no host transfer), so that a trial that
writes into its task's tensors still cannot change another trial's (the contract of
``make_task``'s CPU memo, data/tasks.py). Batches are then drawn by index on the device
(``data.batching.batches``).

Entries are keyed by the task's ``fingerprint`` (the data it holds, not its string) and
the device with its index (``cuda`` is resolved to the current device, so workers pinned to
different GPUs never share an entry). The memo is bounded by count and by bytes, holds only
image and vector tasks (token tasks are moved as before), and is emptied by
``transferlab.data.clear_memory_cache()``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from transferlab.data.tasks import Task, _copy_task, _task_bytes

# At most this many tasks, each at most this large, stay on each device: a study's sweeps
# use one or two targets at a time; 4 x 256 MiB bounds what the memo can pin on a GPU.
DEVICE_MEMO_SIZE = 4
DEVICE_MEMO_BYTES = 256 * 2**20

_RESIDENT: OrderedDict[tuple[str, str], Task] = OrderedDict()
_LOCK = threading.Lock()  # the local backend runs one trial in a thread of the driver


def device_key(device: str | torch.device) -> str:
    """``device`` as the memo keys it: ``cuda`` -> ``cuda:<current device>``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def on_device(task: Task, device: str | torch.device) -> Task:
    """``task`` with its tensors on ``device``; moved from the host at most once per process.

    The task itself when it is already there; else a copy of the kept device-side task
    (fingerprint carried over). Tasks over ``DEVICE_MEMO_BYTES`` and token tasks are moved
    with ``Task.to`` and not kept; CPU targets are never kept (``make_task`` keeps those).
    """
    where = device_key(device)
    if device_key(task.device) == where:
        return task
    if where == "cpu" or _task_bytes(task) > DEVICE_MEMO_BYTES:
        return task.to(device)
    key = (task.fingerprint, where)
    with _LOCK:
        hit = _RESIDENT.get(key)
        if hit is not None:
            _RESIDENT.move_to_end(key)
    if hit is None:
        hit = task.to(device)
        with _LOCK:
            _RESIDENT[key] = hit
            _RESIDENT.move_to_end(key)
            while len(_RESIDENT) > DEVICE_MEMO_SIZE:
                _RESIDENT.popitem(last=False)
    return _copy_task(hit)


def resident_keys() -> list[tuple[str, str]]:
    """(fingerprint, device) of the tasks kept, oldest first (for tests and diagnostics)."""
    with _LOCK:
        return list(_RESIDENT)


def clear_device_memo() -> None:
    """Forget the device-side tasks (their memory returns to torch's caching allocator)."""
    with _LOCK:
        _RESIDENT.clear()
