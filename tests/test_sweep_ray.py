"""The Ray backend gives the same results as the local one; without Ray, a clear error."""

from __future__ import annotations

import sys

import pandas as pd
import pytest

from transferlab.errors import UserError
from transferlab.sweep import aggregate, run_sweep


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    from transferlab.api import pretrain_checkpoint

    path = tmp_path_factory.mktemp("src") / "src"
    pretrain_checkpoint("digits:classes=0-4:size=16", str(path),
                        arch_kwargs={"width": 4, "fc_width": 16},
                        train={"epochs": 1, "batch_size": 64, "device": "cpu"})
    return {"name": "r", "target": "digits:classes=5-9:size=16",
            "sources": {"a": {"checkpoint": str(path)}},
            "axes": {"protocol": ["freeze", "reinit+"], "depth": [1, 4], "seed": 2},
            "train": {"epochs": 1, "batch_size": 64, "device": "cpu"}}


def test_missing_ray_names_the_extra(spec, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(UserError, match=r"pip install transferlab\[ray\]"):
        run_sweep(spec, tmp_path / "r.sqlite", backend="ray", progress=False)
    assert not (tmp_path / "r.sqlite").exists()


def test_address_only_with_ray(spec, tmp_path):
    with pytest.raises(UserError, match="--address='auto' is invalid with --backend local"):
        run_sweep(spec, tmp_path / "r.sqlite", address="auto", progress=False)


@pytest.mark.slow
def test_ray_matches_local(spec, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install "
                                            "transferlab[ray]")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Ray task (1 CPU), so numbers match exactly
    try:
        local = run_sweep(spec, tmp_path / "local.sqlite", workers=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(spec, tmp_path / "ray.sqlite", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert len(remote) == len(local) == 8 and (remote["status"] == "done").all()
    assert set(remote["key"]) == set(local["key"])
    merged = local.merge(remote, on="key", suffixes=("", "_ray"))
    assert (merged["test_acc"] == merged["test_acc_ray"]).all()
    pd.testing.assert_frame_equal(aggregate(local, ["protocol", "depth"]),
                                  aggregate(remote, ["protocol", "depth"]))
