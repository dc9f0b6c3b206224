"""Head replacement for a target task's number of classes."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.models.base import BlockModel


def _last_linear(head: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The last ``nn.Linear`` in ``head`` and (parent, attribute) to replace it."""
    if isinstance(head, nn.Linear):
        return head, "", head
    found = None
    for parent in head.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                found = (parent, name, child)
    if found is None:
        raise ValueError(f"head {type(head).__name__} has no nn.Linear to replace")
    return found


def replace_head(model: BlockModel, num_classes: int,
                 generator: torch.Generator | None = None) -> BlockModel:
    """Replace the final linear layer by a fresh one with ``num_classes`` outputs (in place).

    The new layer is on the old one's device and dtype; with ``generator`` its
    initialisation is seeded independently of the global RNG.
    """
    from transferlab.models.base import reset_parameters

    parent, attr, old = _last_linear(model.head)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                    device=old.weight.device, dtype=old.weight.dtype)
    reset_parameters(new, generator)
    if attr == "":
        model.head = new
    else:
        setattr(parent, attr, new)
    if model.arch is not None:
        model.arch = {**model.arch, "num_classes": num_classes}
    return model
