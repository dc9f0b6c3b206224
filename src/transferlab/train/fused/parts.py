"""Helpers of the fused engine: refusals, module modes, the frozen prefix, data splits."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.models.base import BlockModel
from transferlab.train.config import TrainConfig

STATS_NORM = nn.modules.batchnorm._NormBase
PLAIN = "use transferlab.transfer (the plain per-trial path) for it"


class From(nn.Module):
    """``model.forward_from(x, start)`` as a module forward (for ``functional_call``)."""

    def __init__(self, model: BlockModel, start: int):
        super().__init__()
        self.m, self.start = model, start

    def forward(self, x):
        return self.m.forward_from(x, self.start)


def _root_hook(config, name: str):
    """The base class's definition of hook ``name`` (train/ does not import protocols)."""
    return [k for k in type(config).__mro__ if name in vars(k)][-1].__dict__[name]


def check_fusable(protocols: list, cfg: TrainConfig, x: Any) -> None:
    """Raise ``UserError`` when these trials cannot run fused (the plain path can)."""
    first = protocols[0]
    for proto in protocols:
        c = proto.config
        for hook in ("fit", "loss_term", "after_step"):
            if getattr(type(c), hook) is not _root_hook(c, hook):
                raise UserError(f"protocol={proto.name!r} has its own {hook}: allowed in "
                                "the fused engine are SGD-loop protocols without step hooks "
                                f"(freeze:n, finetune, bn-only, ...); {PLAIN}")
        if type(c) is not type(first.config) or dataclasses.replace(
                c, depth=None, upto=None) != dataclasses.replace(first.config, depth=None,
                                                                  upto=None):
            raise UserError(f"protocol={proto.name!r} is invalid with {first.name!r} in one "
                            "fused job: allowed are protocols that differ by depth only; "
                            "group trials by protocol family")
    if cfg.augment:
        raise UserError(f"crop_padding={cfg.crop_padding}, hflip={cfg.hflip} is invalid for "
                        f"the fused engine: allowed is no augmentation; {PLAIN}")
    if not isinstance(x, torch.Tensor):
        raise UserError(f"inputs of type {type(x).__name__} are invalid for the fused engine: "
                        f"allowed are tensors (images, vectors); {PLAIN}")


def frozen_names(model: nn.Module, frozen: list[nn.Module]) -> set[str]:
    """Names of the modules in eval mode under ``set_train_mode(model, frozen)``."""
    ids = {id(m) for m in frozen}
    out: set[str] = set()
    for name, m in model.named_modules():
        if id(m) in ids:
            out |= {f"{name}.{n}" if n else name for n, _ in m.named_modules()}
    return out


def prefix(model: BlockModel, x: torch.Tensor, depth: int, channels_last: bool,
            cache: dict | None, key) -> torch.Tensor:
    """Eval-mode output of the first ``depth`` blocks, as ``transfer`` computes it."""
    from transferlab.features import prefix_features  # features imports train: no cycle here

    if depth == 0:
        return x
    if cache is not None and key in cache:
        return cache[key]
    out = prefix_features(model, x, depth, channels_last=channels_last)
    if cache is not None:
        cache[key] = out
    return out


def split_of(x, y, t_count: int, name: str):
    """(x, y) of one split: shared (N, ...) / (N,) or per trial (T, N, ...) / (T, N)."""
    if y is None:
        return None, None, False
    per_trial = y.dim() == 2
    if per_trial and (y.shape[0] != t_count or x.shape[0] != t_count):
        raise UserError(f"{name}: per-trial labels of shape {tuple(y.shape)} are invalid: "
                        f"allowed is (T={t_count}, N) with inputs (T, N, ...)")
    return x, y, per_trial


def keep_best(dst: dict, src: dict, which: torch.Tensor) -> None:
    """dst[k][t] = src[k][t] where ``which[t]`` ((T,) bool on their device; in place, no
    synchronisation)."""
    with torch.no_grad():
        for k, v in dst.items():
            v.copy_(torch.where(which.view(-1, *[1] * (v.dim() - 1)), src[k], v))
