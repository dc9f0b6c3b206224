"""The command line: pretrain -> transfer, JSON output, and bad inputs (exit 2, one line)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from transferlab.cli import main

FAST = ["--epochs", "2", "--batch-size", "64", "--device", "cpu", "--quiet"]
ARCH = ["--arch-kwargs", '{"width": 4, "fc_width": 16}']


def _idx(a: np.ndarray) -> bytes:
    magic = 0x08 << 8 | a.ndim  # 0x00 0x00 0x08 (unsigned bytes) ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in a.shape)
    return header + a.astype(np.uint8).tobytes()


def _write_mnist(root: Path, train_labels: np.ndarray | None = None, truncate: bool = False):
    rng = np.random.default_rng(0)
    n = 40
    y = np.arange(n) % 10 if train_labels is None else train_labels
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28)),
             "train-labels-idx1-ubyte": y,
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28)),
             "t10k-labels-idx1-ubyte": np.arange(20) % 10}
    (root / "mnist").mkdir(parents=True, exist_ok=True)
    for name, a in files.items():
        blob = gzip.compress(_idx(np.asarray(a)))
        if truncate and name.startswith("train-images"):
            blob = blob[: len(blob) // 2]
        (root / "mnist" / f"{name}.gz").write_bytes(blob)


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "src"
    assert main(["pretrain", "--task", "digits:classes=0-4:size=16", "--out", str(out),
                 *ARCH, *FAST, "--epochs", "10", "--batch-size", "32"]) == 0
    return out.with_suffix(".safetensors")


def test_pretrain_then_transfer_each_preset(source_ckpt, tmp_path, capsys):
    src = load_file(str(source_ckpt))
    for protocol, frozen in [("linear-probe", 7), ("freeze:3", 3), ("reinit:2", 2),
                             ("reinit+:2", 0), ("finetune", 0), ("bn-only", 0),
                             ("conv-only", 0), ("head-only", 7), ("scratch", 0)]:
        out = tmp_path / protocol.replace(":", "_")
        assert main(["transfer", "--source", str(source_ckpt), "--task",
                     "digits:classes=5-9:size=16", "--protocol", protocol, "--out", str(out),
                     "--json", *FAST]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["metrics"]["test_acc"] > 0.3, protocol  # chance is 0.2
        dst = load_file(str(out) + ".safetensors")
        for k, v in src.items():
            if not k.startswith("blocks."):
                continue
            block = int(k.split(".")[1])
            same = bool((v == dst[k]).all())
            if block < frozen:
                assert same, (protocol, k)  # frozen tensors are bit-identical
        moved = [k for k in src if k.startswith("blocks.") and not bool((src[k] == dst[k]).all())]
        assert bool(moved) == (frozen < 7), protocol
        sidecar = json.loads((Path(str(out) + ".json")).read_text())
        assert sidecar["protocol"] == protocol and sidecar["source"]["sha256"]


def _expect_usage_error(argv, capsys, match, outputs=()):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert match in err, err
    for p in outputs:
        assert not list(Path(p).parent.glob(Path(p).name + "*")), p


def test_bad_inputs_exit_2_with_one_line(source_ckpt, tmp_path, capsys):
    out = tmp_path / "out" / "model"
    base = ["transfer", "--source", str(source_ckpt), "--out", str(out), *FAST]
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_usage_error([*base, "--task", "mnist", "--data-dir", str(empty)], capsys,
                        "train-images-idx3-ubyte", [out])
    trunc = tmp_path / "trunc"
    _write_mnist(trunc, truncate=True)
    _expect_usage_error([*base, "--task", "mnist", "--data-dir", str(trunc)], capsys,
                        "truncated or corrupt", [out])
    bad_labels = tmp_path / "badlabels"
    _write_mnist(bad_labels, train_labels=np.r_[np.arange(39) % 10, 12])
    _expect_usage_error([*base, "--task", "mnist", "--data-dir", str(bad_labels)], capsys,
                        "label 12", [out])
    no_threes = tmp_path / "nothrees"
    _write_mnist(no_threes, train_labels=np.where(np.arange(40) % 10 == 3, 4, np.arange(40) % 10))
    _expect_usage_error([*base, "--task", "mnist", "--data-dir", str(no_threes)], capsys,
                        "no training examples", [out])
    task = ["--task", "digits:classes=5-9:size=16"]
    _expect_usage_error([*base, *task, "--protocol", "defrost:3"], capsys,
                        "protocol='defrost:3' is invalid: allowed are", [out])
    _expect_usage_error([*base, *task, "--protocol", "freeze:8"], capsys,
                        "depth=8 is invalid: allowed is 0..7 for this model", [out])
    _expect_usage_error([*base, *task, "--protocol", "reinit:conv9"], capsys,
                        "block='conv9' is invalid: allowed is one of this model's blocks", [out])
    _expect_usage_error(["transfer", "--source", str(tmp_path / "nope"), *task, *FAST], capsys,
                        "checkpoint=", [])
    _expect_usage_error(["pretrain", "--task", "digits:classes=0,0", "--out", str(out), *FAST],
                        capsys, "classes", [out])


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "transferlab", "transfer", "--source",
                           str(tmp_path / "missing"), "--task", "digits"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    help_proc = subprocess.run([sys.executable, "-m", "transferlab", "--help"],
                               capture_output=True, text=True, timeout=120)
    assert help_proc.returncode == 0
    for cmd in ("datasets", "pretrain", "transfer"):
        assert cmd in help_proc.stdout
