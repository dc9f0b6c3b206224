"""Pooling a block output to (N, F) for the head: flatten, mean over unmasked tokens, CLS.

Kept apart from ``heads.py`` so that ``BlockModel`` (base.py) can tell a pooling head from a
plain one without an import cycle.
"""

from __future__ import annotations

import torch
from torch import nn

from transferlab.errors import UserError, bad_value
from transferlab.inputs import Batched, Hidden, TensorTuple

POOLS = ("flatten", "mean", "cls", "avg")


def pool_features(h: Batched, pool: str) -> torch.Tensor:
    """Reduce a block output to (N, F).

    ``flatten``: (N, ...) -> (N, prod(...)). ``mean``: ``Hidden`` (N, L, H) -> the mean over
    positions whose mask is 1, (N, H) (a row without tokens gives zeros); a plain (N, L, H)
    tensor averages every position. ``cls``: the first position, (N, H). ``avg``: any
    block output averaged over its positions (the ``probe:n`` pooling): (N, C, H, W) ->
    (N, C) global average pool, ``Hidden`` / (N, L, H) as ``mean``, (N, D) unchanged.
    """
    if isinstance(h, Hidden):
        states, mask = h.hidden, h.mask
    elif isinstance(h, TensorTuple):
        raise UserError(f"a head got {type(h).__name__}: allowed are tensors and Hidden states; "
                        "the blocks before the head must return Hidden (or a tensor)")
    else:
        states, mask = h, None
    if pool == "flatten":
        return states.flatten(1) if states.dim() > 2 else states
    if pool == "avg" and states.dim() != 3:  # 3-D (tokens) falls through to "mean"
        return states.mean(tuple(range(2, states.dim()))) if states.dim() > 2 else states
    if states.dim() != 3:
        raise UserError(f"pool={pool!r} needs (N, L, H) states, got shape {tuple(states.shape)}; "
                        "use pool='flatten' for image or vector models")
    if pool == "cls":
        return states[:, 0]
    if mask is None:
        return states.mean(1)
    w = mask.to(states.dtype).unsqueeze(-1)  # (N, L, 1)
    return (states * w).sum(1) / w.sum(1).clamp_min(1.0)


class PooledHead(nn.Module):
    """``linear(pool(h))``: pooling (``flatten``, ``mean`` or ``cls``) then a classifier.

    ``linear`` is an ``nn.Linear`` or a Sequential ending in one (e.g. dropout + linear);
    ``replace_head`` swaps only that final Linear, so the pooling is kept.
    Input: a tensor or ``Hidden`` (N, L, H) -> logits (N, num_classes).
    """

    def __init__(self, pool: str, linear: nn.Module) -> None:
        super().__init__()
        if pool not in POOLS:
            raise bad_value("pool", pool, ", ".join(POOLS))
        self.pool = pool
        self.linear = linear

    def forward(self, h: Batched) -> torch.Tensor:
        return self.linear(pool_features(h, self.pool))

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}"
