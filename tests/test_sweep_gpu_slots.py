"""Several trials per GPU (sweep/backends/gpu.py): the option, the default rule (with a
mocked ``torch.cuda.mem_get_info``), the local backend's shape and GPU pinning, and the
resources a Ray trial asks for. No GPU needed: CUDA calls are replaced by stand-ins."""

from __future__ import annotations

import multiprocessing
import sys
import types

import pytest
import torch

from transferlab.cli import main
from transferlab.errors import UserError
from transferlab.sweep.backends import gpu, local, make_backend, ray_backend

GiB = 2**30


@pytest.fixture
def free_memory(monkeypatch):
    """Set the free memory each mocked GPU reports: free_memory([10 * GiB, ...])."""
    def set_free(values):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (values[i], 141 * GiB))
    monkeypatch.delenv(gpu.WORKERS_PER_GPU_ENV, raising=False)
    return set_free


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
def test_bad_workers_per_gpu_names_the_option(bad):
    with pytest.raises(UserError, match=r"--workers-per-gpu=.* allowed is an integer >= 1"):
        gpu.check_workers_per_gpu(bad)
    with pytest.raises(UserError, match="--workers-per-gpu"):
        make_backend("local", None, 4, workers_per_gpu=bad)


@pytest.mark.parametrize("free, cores, gpus, want", [
    ([10 * GiB], 16, 1, 4),               # memory bound: 0.8 x 10 GiB / 2 GiB
    ([100 * GiB, 100 * GiB], 6, 2, 3),     # cores bound: 6 cores / 2 GPUs
    ([139 * GiB], 64, 1, gpu.MAX_WORKERS_PER_GPU),  # the cap
    ([100 * GiB, 3 * GiB], 32, 2, 1),      # the GPU with the least free memory decides
    ([1 * GiB], 16, 1, 1),                 # at least one
])
def test_default_rule(free_memory, free, cores, gpus, want):
    free_memory(free)
    assert gpu.default_workers_per_gpu(cores=cores, gpus=gpus) == want


def test_a_gpu_that_refuses_a_context_gets_one_worker(monkeypatch):
    def refuse(i=0):
        raise RuntimeError("CUDA error: all CUDA-capable devices are busy or unavailable")
    monkeypatch.setattr(torch.cuda, "mem_get_info", refuse)
    assert gpu.default_workers_per_gpu(cores=16, gpus=1) == 1


def test_trial_size_enters_the_rule(free_memory):
    free_memory([40 * GiB])
    assert gpu.default_workers_per_gpu(trial_bytes=8 * GiB, cores=64, gpus=1) == 4
    assert gpu.default_workers_per_gpu(cores=64, gpus=0) == 1  # no GPU: one


def test_argument_then_environment_then_rule(free_memory, monkeypatch):
    free_memory([10 * GiB])
    monkeypatch.setattr(gpu, "gpu_count", lambda: 1)
    monkeypatch.setattr(local, "available_cores", lambda: 16)
    assert gpu.resolve_workers_per_gpu(None) == 4
    monkeypatch.setenv(gpu.WORKERS_PER_GPU_ENV, "6")
    assert gpu.resolve_workers_per_gpu(None) == 6
    assert gpu.resolve_workers_per_gpu(2) == 2
    monkeypatch.setenv(gpu.WORKERS_PER_GPU_ENV, "many")
    with pytest.raises(UserError, match=r"\$TRANSFERLAB_WORKERS_PER_GPU='many' is invalid"):
        gpu.resolve_workers_per_gpu(None)


def test_local_default_is_workers_per_gpu_times_gpus(monkeypatch, free_memory):
    free_memory([10 * GiB, 10 * GiB])
    monkeypatch.setattr(local, "gpu_count", lambda: 2)
    assert local._default_workers(3, gpus=2) == 6
    assert local._default_workers(None, gpus=0) == local.available_cores()
    backend = local.make_local(None, pending=50, workers_per_gpu=3)
    try:
        assert backend.workers == 6 and backend.gpus == 2
        # the driver's slot is 0, so the first worker process takes slot 1 (GPU 1)
        assert backend._gpu_slots.value == 1
    finally:
        backend.shutdown(force=True)
    assert local.make_local(None, pending=2, workers_per_gpu=3).workers == 2  # few jobs
    local.close_pools()


def test_worker_slots_spread_over_the_gpus(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    counter = multiprocessing.get_context("spawn").Value("i", 1)
    got = [gpu.pin_to_gpu(gpu.take_slot(counter), 2) for _ in range(4)]
    assert got == chosen == [1, 0, 1, 0] and counter.value == 5
    assert gpu.pin_to_gpu(7, 1) is None and len(chosen) == 4  # one GPU: nothing to pin


def test_ray_asks_for_a_fraction_of_a_gpu(monkeypatch):
    monkeypatch.delenv(gpu.WORKERS_PER_GPU_ENV, raising=False)
    assert ray_backend.resource_request({"CPU": 8, "GPU": 2}, 1, 4) == {
        "num_cpus": 1, "max_retries": 0, "num_gpus": 0.25}
    assert ray_backend.resource_request({"CPU": 8}, 2, 4) == {"num_cpus": 2, "max_retries": 0}
    monkeypatch.setenv(gpu.WORKERS_PER_GPU_ENV, "5")
    assert ray_backend.resource_request({"CPU": 8, "GPU": 1}, 1, None)["num_gpus"] == 0.2
    with pytest.raises(UserError, match="--workers-per-gpu=0"):
        ray_backend.resource_request({"CPU": 8, "GPU": 1}, 1, 0)


def test_ray_backend_builds_its_remote_with_the_request(monkeypatch):
    asked = {}

    def remote(**options):
        asked.update(options)
        return lambda fn: types.SimpleNamespace(remote=fn)

    fake = types.SimpleNamespace(is_initialized=lambda: True, remote=remote,
                                 cluster_resources=lambda: {"CPU": 16.0, "GPU": 1.0})
    monkeypatch.setattr(ray_backend, "_import_ray", lambda: fake)
    backend = ray_backend.RayBackend(workers_per_gpu=4)
    assert asked == {"num_cpus": 1, "max_retries": 0, "num_gpus": 0.25}
    assert backend.capacity == 4  # one GPU holds 4 trials, though 16 CPUs would take 16


def test_cli_options(capsys, monkeypatch):
    assert main(["sweep", "--workers-per-gpu", "0", "--source", "x.safetensors",
                 "--target", "digits"]) == 2
    assert "--workers-per-gpu=0 is invalid" in capsys.readouterr().err
    from transferlab.cli import study as study_cli

    monkeypatch.delenv(gpu.WORKERS_PER_GPU_ENV, raising=False)
    with study_cli._workers_per_gpu(3):
        import os

        assert os.environ[gpu.WORKERS_PER_GPU_ENV] == "3"
    assert gpu.WORKERS_PER_GPU_ENV not in __import__("os").environ
    with pytest.raises(SystemExit):
        main(["study", "yosinski", "--help"])
    assert "--workers-per-gpu" in capsys.readouterr().out
