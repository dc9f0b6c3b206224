"""The seeded-init helper (models/init.py): device-free draws, and a scan of src/ that fails
when code draws with a generator on a tensor that may live on a GPU anywhere else."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from transferlab.models import build_model, replace_head
from transferlab.models import init as tinit
from transferlab.models.base import reset_parameters

SRC = Path(__file__).resolve().parents[1] / "src" / "transferlab"
HELPER = SRC / "models" / "init.py"

# Factories that make a fresh tensor: with generator= they draw on the CPU unless a device
# is named. Anything else taking generator= (an in-place method, nn.init, multinomial or
# bernoulli of an input) draws on an existing tensor, whose device the caller does not know.
_FACTORIES = {"rand", "randn", "randint", "randperm", "rand_like"}
_CPU = {"cpu", None}


def _name(node: ast.AST) -> str:
    """Dotted name of a call's function (``torch.nn.init.normal_``, ``x.uniform_``)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    else:
        parts.append("<expr>")
    return ".".join(reversed(parts))


def _device_kw(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if kw.arg == "device":
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<non-literal>"
    return None


def _helper_names(tree: ast.AST) -> set[str]:
    """Local names bound to ``transferlab.models.init`` or to a function imported from it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("transferlab.models", "."):
            names |= {a.asname or a.name for a in node.names if a.name == "init"}
        elif isinstance(node, ast.ImportFrom) and node.module == "transferlab.models.init":
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.asname for a in node.names
                      if a.name == "transferlab.models.init" and a.asname}
    return names


def generator_draw_violations(source: str, filename: str = "<src>") -> list[str]:
    """Calls in ``source`` that pass ``generator=`` and do not draw into a fresh CPU tensor:
    ``file:line name``. A torch factory (``torch.randperm(n, generator=g)``) is fine without
    a device or with device "cpu" (``.to(x.device)`` afterwards moves the values)."""
    tree = ast.parse(source, filename)
    helper = _helper_names(tree)
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if not any(kw.arg == "generator" for kw in node.keywords):
            continue
        name = _name(node.func)
        leaf = name.rsplit(".", 1)[-1]
        if name in helper or name.split(".", 1)[0] in helper:
            continue  # the helper itself: draws on the CPU and copies
        if name.startswith("torch.") and name.count(".") == 1 and leaf in _FACTORIES \
                and _device_kw(node) in _CPU and leaf != "rand_like":
            continue
        if leaf in ("batches", "fit", "Augment", "augment", "_bucketed", "apply_shift",
                    "replace_head", "reset_parameters", "make_plan", "plan", "generator",
                    "padded_tokens") or not (name.startswith(("torch.", "nn.", "init."))
                                             or leaf.endswith("_") or leaf in
                                             {"multinomial", "bernoulli", "normal", "poisson"}):
            # passes the generator on to code that the scan checks itself
            continue
        bad.append(f"{filename}:{node.lineno} {name}")
    return bad


def test_scan_flags_every_kind_of_device_bound_draw():
    """The scan's own known answers: each device-bound draw is flagged, each fresh CPU
    draw and each hand-over is not."""
    flagged = [
        "nn.init.normal_(w, generator=g)",
        "torch.nn.init.kaiming_uniform_(m.weight, a=1, generator=g)",
        "init.xavier_uniform_(w, generator=g)",  # torch's nn.init: not imported from us
        "from torch.nn import init\ninit.normal_(w, generator=g)",
        "w.uniform_(-1, 1, generator=g)",
        "m.weight.data.normal_(generator=g)",
        "torch.randn(3, device=x.device, generator=g)",
        "torch.randperm(5, generator=g, device='cuda')",
        "torch.multinomial(p, 2, generator=g)",
        "torch.rand_like(x, generator=g)",
    ]
    fine = [
        "torch.randperm(5, generator=g).to(x.device)",
        "torch.randint(0, 3, (2, 4), generator=g)",
        "torch.rand(4, generator=g, device='cpu')",
        "batches(x, y, 8, shuffle=True, generator=g)",
        "replace_head(model, 3, generator)",
        "config.plan(model, 3, generator=g)",
        "nn.init.normal_(w)",
        "from transferlab.models import init\ninit.normal_(w, generator=g)",
        "from transferlab.models.init import uniform_\nuniform_(w, 0, 1, generator=g)",
    ]
    for code in flagged:
        assert generator_draw_violations(code), code
    for code in fine:
        assert not generator_draw_violations(code), code


def test_no_generator_draw_on_a_tensor_outside_the_init_helper():
    """Every seeded draw onto an existing tensor goes through models/init.py, which draws
    on the CPU and copies: a CPU generator on a CUDA parameter raises on a GPU."""
    files = sorted(SRC.rglob("*.py"))
    assert HELPER in files and len(files) > 50
    bad = []
    for path in files:
        if path == HELPER:
            continue
        bad += generator_draw_violations(path.read_text(), str(path.relative_to(SRC)))
    assert not bad, ("draw with generator= on an existing tensor (use transferlab.models."
                     "init, which draws on the CPU and copies to the device): " + ", ".join(bad))


def test_helper_matches_nn_init_on_the_cpu():
    """On a float32 CPU tensor the helper draws exactly what nn.init draws in place, so
    weights seeded before it existed are unchanged."""
    a, b = torch.empty(7, 5), torch.empty(7, 5)
    nn.init.kaiming_uniform_(a, a=5 ** 0.5, generator=torch.Generator().manual_seed(3))
    tinit.kaiming_uniform_(b, a=5 ** 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_same_seed_same_weights_whatever_the_global_rng():
    """A seeded reset ignores the global RNG; two seeds differ."""
    def weights(seed: int, global_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(global_seed)
        torch.rand(17)  # move the global stream
        m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Linear(4, 2),
                          nn.Embedding(5, 4, padding_idx=0), nn.MultiheadAttention(4, 2))
        reset_parameters(m, torch.Generator().manual_seed(seed))
        return [p.detach().clone() for p in m.parameters()]

    one, two, other = weights(1, 0), weights(1, 99), weights(2, 0)
    assert all(torch.equal(a, b) for a, b in zip(one, two))
    assert not all(torch.equal(a, b) for a, b in zip(one, other))


def test_low_precision_and_float64_parameters():
    """bf16 receives the float32 draw rounded once; float64 is drawn in float64."""
    w16 = torch.empty(6, 4, dtype=torch.bfloat16)
    w32 = torch.empty(6, 4)
    tinit.normal_(w16, 0.0, 1.0, torch.Generator().manual_seed(0))
    tinit.normal_(w32, 0.0, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(w16, w32.to(torch.bfloat16))
    w64 = torch.empty(6, 4, dtype=torch.float64)
    tinit.normal_(w64, 0.0, 1.0, torch.Generator().manual_seed(0))
    want = torch.empty(6, 4, dtype=torch.float64)
    want.normal_(generator=torch.Generator().manual_seed(0))
    assert torch.equal(w64, want)


def test_a_non_cpu_generator_is_refused_with_the_reason():
    """A CUDA generator would give other numbers than the CPU one: refused, saying why."""
    cuda_gen = SimpleNamespace(device=torch.device("cuda", 0))  # only .device is read
    with pytest.raises(ValueError, match="CPU generator"):
        tinit.normal_(torch.empty(2), generator=cuda_gen)


def test_replace_head_keeps_device_and_dtype():
    model = build_model("mlp", 3, in_channels=1, image_size=4).to(torch.float64)
    replace_head(model, 5, torch.Generator().manual_seed(0))
    w = model.head.weight if isinstance(model.head, nn.Linear) else \
        [m for m in model.head.modules() if isinstance(m, nn.Linear)][-1].weight
    assert w.dtype == torch.float64 and w.shape[0] == 5


@pytest.mark.gpu
def test_cuda_draw_equals_the_cpu_draw():
    """The point of the helper: the same seed gives the same weights on CUDA as on the CPU
    (bit-equal: the values are drawn on the CPU and copied)."""
    def model(device: str) -> nn.Module:
        m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Linear(4, 2), nn.Embedding(5, 4),
                          nn.MultiheadAttention(4, 2)).to(device)
        reset_parameters(m, torch.Generator().manual_seed(5))
        return m

    cpu, cuda = model("cpu"), model("cuda")
    for a, b in zip(cpu.parameters(), cuda.parameters()):
        assert b.device.type == "cuda"
        assert torch.equal(a, b.cpu())
