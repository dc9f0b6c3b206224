"""Heads: pooling + the final linear classifier, its replacement, and the probe's view of it.

A CNN's head reads the last block's output flattened to (N, F). A text encoder's last block
returns ``Hidden`` (N, L, H) states plus a mask, which a ``PooledHead`` reduces to (N, H)
(mean over unmasked tokens, or the first token, CLS) before its linear part.
``head_input`` / ``head_linear`` give any caller (the linear probe) "the final Linear and
its input for these features" without knowing how the head pools.
"""

from __future__ import annotations

import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.inputs import Batched
from transferlab.models.base import BlockModel
from transferlab.models.pooling import POOLS, PooledHead, pool_features

__all__ = ["POOLS", "PooledHead", "head_input", "head_linear", "pool_features", "replace_head"]

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


def _split_head(head: nn.Module) -> tuple[str | None, list[nn.Module], nn.Linear]:
    """(pool or None for "flatten", modules applied before the final Linear, that Linear)."""
    pool, body = None, head
    if isinstance(head, PooledHead):
        pool, body = head.pool, head.linear
    if isinstance(body, nn.Linear):
        return pool, [], body
    mods = list(body.children()) if isinstance(body, nn.Sequential) else []
    if not mods or not isinstance(mods[-1], nn.Linear):
        raise UserError("protocol='linear-probe' needs a head that is a Linear layer or a "
                        "Sequential ending in one (optionally inside a PooledHead); use "
                        "'head-only' for other heads")
    return pool, mods[:-1], mods[-1]


def head_linear(model: BlockModel) -> nn.Linear:
    """The head's final ``nn.Linear`` (the layer a linear probe fits)."""
    return _split_head(model.head)[2]


@torch.no_grad()
def head_input(model: BlockModel, feats: Batched) -> torch.Tensor:
    """What ``head_linear(model)`` reads for ``feats``, the last block's output: (N, F).

    Pooling is applied (flatten for plain heads), then every module of the head before its
    final Linear, in eval mode (dropout off). ``feats``: a tensor (N, ...) or ``Hidden``.
    """
    pool, before, _ = _split_head(model.head)
    h = pool_features(feats, pool or "flatten")
    for m in before:
        was = m.training
        m.eval()
        h = m(h)
        m.train(was)
    return h


def replace_head(model: BlockModel, num_classes: int,
                 generator: torch.Generator | None = None) -> BlockModel:
    """Replace the final linear layer by a fresh one with ``num_classes`` outputs (in place).

    The new layer is on the old one's device and dtype; with ``generator`` its
    initialisation is seeded independently of the global RNG. A ``PooledHead`` keeps its
    pooling.
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
