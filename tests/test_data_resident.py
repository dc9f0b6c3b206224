"""Task tensors kept on a device once per process (data/resident.py) and batches drawn by
index there. CPU-only here: the "meta" device stands in for an accelerator (tensors with
shapes and no storage), so the memo's keys, bound and copies are checked without a GPU;
the CUDA half of each claim is in the gpu lane."""

from __future__ import annotations

import pytest
import torch

from transferlab.data import batches, clear_memory_cache, from_arrays, make_task
from transferlab.data import resident
from transferlab.errors import UserError


def _task(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(40, 6, generator=g).numpy()
    y = (torch.arange(40) % 2).numpy()
    return make_task("arrays", dataset=from_arrays(x, y, name=f"a{seed}"))


@pytest.fixture(autouse=True)
def _fresh():
    clear_memory_cache()
    yield
    clear_memory_cache()


def test_kept_once_per_fingerprint_and_device_and_copied_per_trial():
    task = _task(0)
    a = resident.on_device(task, "meta")
    b = resident.on_device(task, "meta")
    assert a.device.type == "meta" and b.device.type == "meta"
    assert resident.resident_keys() == [(task.fingerprint, "meta")]
    # each caller gets its own tensors (a trial writing into its task changes no other)
    assert a.x_train is not b.x_train and a.fingerprint == b.fingerprint == task.fingerprint
    # the same data built again (another Task object, same fingerprint) hits the same entry
    again = _task(0)
    resident.on_device(again, "meta")
    assert len(resident.resident_keys()) == 1


def test_cpu_target_and_already_there_are_not_kept():
    task = _task(1)
    assert resident.on_device(task, "cpu") is task
    moved = resident.on_device(task, "meta")
    assert resident.on_device(moved, "meta") is moved
    assert resident.resident_keys() == [(task.fingerprint, "meta")]


def test_bounded_by_count_and_bytes_and_freed(monkeypatch):
    tasks = [_task(s) for s in range(resident.DEVICE_MEMO_SIZE + 2)]
    for t in tasks:
        resident.on_device(t, "meta")
    keys = resident.resident_keys()
    assert len(keys) == resident.DEVICE_MEMO_SIZE  # least recently used went first
    assert [k[0] for k in keys] == [t.fingerprint for t in tasks[2:]]
    monkeypatch.setattr(resident, "DEVICE_MEMO_BYTES", 100)  # smaller than any task here
    big = _task(99)
    assert resident.on_device(big, "meta").device.type == "meta"
    assert (big.fingerprint, "meta") not in resident.resident_keys()
    clear_memory_cache()
    assert resident.resident_keys() == []


def test_batches_same_order_for_same_seed_whatever_the_generator_state():
    x = torch.arange(50, dtype=torch.float32)[:, None]
    y = torch.arange(50)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return [yb.tolist() for _, yb in batches(x, y, 8, True, generator=g)]

    assert order(3) == order(3) and order(3) != order(4)
    # the permutation is the generator's randperm, cut in batch_size pieces
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3)).tolist()
    assert sum(order(3), []) == perm


def test_batches_index_on_the_data_device():
    x = torch.zeros(20, 3, device="meta")
    y = torch.zeros(20, dtype=torch.int64, device="meta")
    got = list(batches(x, y, 6, True, generator=torch.Generator().manual_seed(0)))
    assert [tuple(xb.shape) for xb, _ in got] == [(6, 3), (6, 3), (6, 3), (2, 3)]
    assert all(xb.device.type == "meta" and yb.device.type == "meta" for xb, yb in got)


def test_batches_refuse_a_non_cpu_generator():
    class FakeGen:  # a stand-in: no CUDA generator can be built here
        device = torch.device("cuda")

    with pytest.raises(UserError, match="generator=.*CPU generator"):
        next(batches(torch.zeros(4, 2), torch.zeros(4), 2, True, generator=FakeGen()))


@pytest.mark.gpu
def test_cuda_batches_equal_cpu_batches_and_memo_keys_by_index():
    x = torch.randn(50, 3)
    y = torch.arange(50)

    def run(dev):
        g = torch.Generator().manual_seed(5)
        return [(xb.cpu(), yb.cpu()) for xb, yb in
                batches(x.to(dev), y.to(dev), 7, True, generator=g)]

    for (xa, ya), (xb, yb) in zip(run("cpu"), run("cuda")):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    task = _task(7)
    moved = resident.on_device(task, "cuda")
    assert moved.device.type == "cuda"
    assert resident.resident_keys() == [(task.fingerprint, f"cuda:{torch.cuda.current_device()}")]
    assert resident.on_device(moved, "cuda") is moved
