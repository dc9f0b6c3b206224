"""keep_freed_memory: freed tensor memory is reused (no page faults), and the opt-outs hold.

Each case runs in a fresh interpreter: mallopt settings are per process and never undone.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt thresholds are glibc's")

# A training step's pattern in miniature: tensors of several sizes, allocated and freed
# again and again. 64 and 40 MiB are above glibc's largest dynamic mmap threshold (32 MiB),
# so with its defaults each is a fresh mapping whose 16,384 / 10,240 pages fault in anew
# on every round. Kept, the heap reaches a steady layout within a few rounds and then
# reuses warm pages (measured on the CI machine's glibc 2.36: 0 faults from round 4 on).
PROBE = """
import json, resource, torch
from transferlab._allocator import keep_freed_memory, allocator_state
kept = keep_freed_memory()
assert keep_freed_memory() == kept  # idempotent
def one_round():
    for mib in (8, 20, 64, 3, 40):
        torch.empty(mib << 18).fill_(1.0)
for _ in range(6):  # until the heap's layout settles
    one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    one_round()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"kept": kept, "faults": faults, "state": allocator_state()}))
"""


def _probe(**env) -> dict:
    full = {k: v for k, v in os.environ.items()
            if k not in ("TRANSFERLAB_MALLOC", "GLIBC_TUNABLES")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_freed_memory_is_reused_without_page_faults():
    r = _probe()
    assert r["kept"] is True and r["state"] == {"kept": True, "why_not": None}
    assert r["faults"] < 1000  # of 2 x 34,560 pages: kept, not returned and re-faulted


@glibc
def test_system_opt_out_keeps_glibc_defaults():
    r = _probe(TRANSFERLAB_MALLOC="system")
    assert r["kept"] is False and r["state"]["why_not"] == "TRANSFERLAB_MALLOC=system"
    assert r["faults"] > 2 * 16_384  # at least the 64 MiB tensor mapped afresh each round


@glibc
def test_users_tunables_win():
    r = _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000000")
    assert r["kept"] is False and r["state"]["why_not"] == "GLIBC_TUNABLES sets malloc options"


@glibc
def test_a_misspelt_choice_is_reported_not_raised():
    r = _probe(TRANSFERLAB_MALLOC="sytem")
    assert r["kept"] is False
    assert r["state"]["why_not"] == ("TRANSFERLAB_MALLOC='sytem' is not 'keep' or 'system'; "
                                     "glibc's defaults are kept")


def test_training_and_features_call_it(monkeypatch):
    """The entry points that allocate per batch ask for it (the probe shows what it does)."""
    import torch

    import transferlab.features as features
    import transferlab.train.loop as loop
    from transferlab.models import build_model

    calls = []
    monkeypatch.setattr(loop, "keep_freed_memory", lambda: calls.append("loop"))
    monkeypatch.setattr(features, "keep_freed_memory", lambda: calls.append("features"))
    from transferlab.train import TrainConfig

    model = build_model("convnet", num_classes=2, in_channels=1, image_size=16)
    x, y = torch.randn(8, 1, 16, 16), torch.tensor([0, 1] * 4)
    loop.evaluate(model, x, y)
    features.prefix_features(model, x, 1)
    loop.fit(model, x, y, x, y, TrainConfig(epochs=1, batch_size=8),
             [{"params": list(model.parameters()), "lr_scale": 1.0}], progress=False)
    assert calls[:3] == ["loop", "features", "loop"]
