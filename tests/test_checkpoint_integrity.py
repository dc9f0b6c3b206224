"""Checkpoint pairs that cannot be mixed, atomic writes that survive a kill (issue: trust)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from transferlab._atomic import atomic_path, clean_stale_temps
from transferlab.checkpoint import (checkpoint_paths, load_checkpoint, read_meta, recover,
                                    save_checkpoint)
from transferlab.errors import UserError
from transferlab.models import build_model


def _model(seed: int):
    torch.manual_seed(seed)
    return build_model("mlp", 3, in_channels=1, image_size=4, width=8)


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sidecar_records_weights_hash_and_load_checks_it(tmp_path):
    w = save_checkpoint(tmp_path / "m", _model(0), {"task": "t"})
    meta = read_meta(w)
    assert len(meta["weights_sha256"]) == 64
    model, _ = load_checkpoint(w)
    assert _same(model, _model(0))


def test_new_weights_next_to_old_sidecar_is_refused(tmp_path):
    save_checkpoint(tmp_path / "m", _model(0), {})
    old_sidecar = (tmp_path / "m.json").read_text()
    save_checkpoint(tmp_path / "m", _model(1), {})
    (tmp_path / "m.json").write_text(old_sidecar)
    with pytest.raises(UserError, match=r"mismatched pair: m.safetensors has sha256"):
        load_checkpoint(tmp_path / "m")


def _interrupt_after_pending(tmp_path, rename_weights: bool) -> None:
    """Replay a save killed after the commit record was written (before/after the weights
    were renamed), by doing the steps of save_checkpoint by hand."""
    from safetensors.torch import save_file

    from transferlab.checkpoint import _file_sha256, _pending
    weights, sidecar = checkpoint_paths(tmp_path / "m")
    new = _model(1)
    tmp = tmp_path / "new.safetensors"
    save_file({k: v.contiguous() for k, v in new.state_dict().items()}, str(tmp))
    meta = json.loads(sidecar.read_text())
    meta["weights_sha256"] = _file_sha256(tmp)
    _pending(sidecar).write_text(json.dumps(meta))
    if rename_weights:
        os.replace(tmp, weights)


@pytest.mark.parametrize("renamed, expect_seed", [(False, 0), (True, 1)])
def test_interrupted_save_resolves_to_old_or_new_pair(tmp_path, renamed, expect_seed):
    save_checkpoint(tmp_path / "m", _model(0), {})
    _interrupt_after_pending(tmp_path, renamed)
    model, _ = load_checkpoint(tmp_path / "m")  # recover() runs on read
    assert _same(model, _model(expect_seed))
    assert not (tmp_path / "m.json.next").exists()


@pytest.mark.parametrize("field, value, message", [
    ("arch", "convnet", r"field 'arch' is str, allowed is object or null"),
    ("blocks", "conv1", r"field 'blocks' is str, allowed is list"),
    ("metrics", [1], r"field 'metrics' is list, allowed is dict"),
    ("weights_sha256", 7, r"field 'weights_sha256' is int, allowed is str"),
    ("arch", {"width": 8}, r"arch.arch must name an architecture"),
])
def test_malformed_sidecar_fields_are_named(tmp_path, field, value, message):
    save_checkpoint(tmp_path / "m", _model(0), {})
    meta = json.loads((tmp_path / "m.json").read_text())
    meta[field] = value
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=message):
        load_checkpoint(tmp_path / "m")


def test_sidecar_that_is_not_an_object_or_misses_arch(tmp_path):
    save_checkpoint(tmp_path / "m", _model(0), {})
    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="allowed is a JSON object, got list"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(UserError, match="has no 'arch' field"):
        load_checkpoint(tmp_path / "m")


def test_architecture_that_does_not_match_the_weights(tmp_path):
    save_checkpoint(tmp_path / "m", _model(0), {})
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["arch"]["width"] = 16
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=r"the weights do not match the architecture in m.json"):
        load_checkpoint(tmp_path / "m")


def test_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m", _model(0), {})
    finally:
        os.umask(old)
    for f in ("m.safetensors", "m.json"):
        assert (tmp_path / f).stat().st_mode & 0o777 == 0o644


def test_stale_temporary_files_of_dead_writers_are_cleaned(tmp_path):
    target = tmp_path / "m.safetensors"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.safetensors.{dead.pid}.abc.tmp"
    live = tmp_path / f".m.safetensors.{os.getpid()}.xyz.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress")
    assert clean_stale_temps(target) == [stale]
    assert live.exists() and not stale.exists()


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_recover_without_journal_is_a_no_op(tmp_path):
    recover(tmp_path / "nothing")
    assert list(tmp_path.iterdir()) == []


def _cmd(kind: str, out: Path, seed: int, base: Path) -> list[str]:
    # --min-steps 0: a subprocess, outside conftest's exact_epochs (one epoch, as timed)
    common = ["--epochs", "1", "--min-steps", "0", "--seed", str(seed), "--quiet", "--out",
              str(out)]
    if kind == "pretrain":
        return [sys.executable, "-m", "transferlab", "pretrain", "--task", "digits:size=8",
                "--arch", "mlp", *common]
    return [sys.executable, "-m", "transferlab", "transfer", "--source", str(base), "--task",
            "digits:classes=5-9:size=8", "--protocol", "finetune", *common]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pretrain", "transfer"])
def test_sigkill_at_random_points_never_leaves_a_mix(tmp_path, kind):
    """Kill `pretrain --out` / `transfer --out` at random moments (a fresh path first, then
    over an existing pair): afterwards the pair is absent, the old one or the new one."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = tmp_path / "base"
    subprocess.run(_cmd("pretrain", base, 0, base), check=True, env=env,
                   capture_output=True)
    out = tmp_path / "dst"
    t0 = time.perf_counter()
    subprocess.run(_cmd(kind, tmp_path / "timing", 0, base), check=True, env=env,
                   capture_output=True)
    t_run = time.perf_counter() - t0
    rng = random.Random(0)
    seeds_written = []
    for i in range(6):
        proc = subprocess.Popen(_cmd(kind, out, i + 1, base), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(0.6, 1.05) * t_run)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        try:
            _, meta = load_checkpoint(out)  # a complete, verified pair...
            seeds_written.append(meta["seed"])
            assert meta["seed"] in range(1, i + 2)
        except UserError as exc:  # ...or none at all (only before the first write finished)
            assert "expected" in str(exc) and not seeds_written, exc
        assert not (tmp_path / "dst.json.next").exists()  # the read resolved any journal
    # the next complete write removes every temporary file the killed writers left
    subprocess.run(_cmd(kind, out, 9, base), check=True, env=env, capture_output=True)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".next"))] == []
    assert load_checkpoint(out)[1]["seed"] == 9
