"""Device hazards found by reading, checked on the CPU (the meta device stands for CUDA)."""

from __future__ import annotations

import pytest
import torch

from transferlab.errors import UserError
from transferlab.models import build_model
from transferlab.models.compat import check_runs_on


def test_model_and_inputs_on_two_devices_is_named_as_such_not_as_a_shape():
    """A device mismatch used to read 'cannot run on inputs of shape ...'; now it names
    both devices (meta stands for cuda: it is a device no CPU tensor is on)."""
    model = build_model("convnet", 3, in_channels=1, image_size=8).to("meta")
    with pytest.raises(UserError, match=r"is on meta but the inputs are on cpu") as err:
        check_runs_on(model, torch.zeros(2, 1, 8, 8))
    assert "shape" not in str(err.value)


def test_same_device_still_checks_shapes():
    model = build_model("convnet", 3, in_channels=1, image_size=8)
    with pytest.raises(UserError, match="inputs of shape"):
        check_runs_on(model, torch.zeros(2, 3, 8, 8), task="digits")
    check_runs_on(model, torch.zeros(2, 1, 8, 8))  # runs: no error


# Files whose .numpy() calls see CPU tensors by construction, and why.
CPU_BY_CONSTRUCTION = {
    "metrics/plot.py": "reliability_bins returns CPU tensors (metrics/_validate.as_tensor)",
    "transferability/_validate.py": "to_numpy moves the tensor to the CPU first",
    "similarity/cka.py": "only under a device.type == 'cpu' check",
    "similarity/_validate.py": "only under a device.type == 'cpu' check",
    "data/text.py": "tensors just loaded from a safetensors file (CPU)",
    "data/tasks.py": "the fingerprint moves each tensor to the CPU first",
}


def test_numpy_is_called_on_cpu_tensors():
    """``.numpy()`` on a CUDA tensor raises: every call in src/ goes through ``.cpu()`` (or
    ``.to("cpu")``) in the same expression, or sits in a file listed above with why."""
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "transferlab"
    bad = []
    for path in sorted(src.rglob("*.py")):
        rel = str(path.relative_to(src))
        if rel in CPU_BY_CONSTRUCTION:
            continue
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "numpy" and not node.args:
                receiver = ast.get_source_segment(text, node.func.value) or ""
                if ".cpu()" not in receiver and '.to("cpu"' not in receiver:
                    bad.append(f"{rel}:{node.lineno} {receiver}.numpy()")
    assert not bad, "call .cpu() before .numpy(): " + "; ".join(bad)
