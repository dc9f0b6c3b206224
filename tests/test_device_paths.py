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
