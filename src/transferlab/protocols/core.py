"""What every transfer protocol decides, and how a decision becomes a training plan.

A protocol is fixed by: the transfer depth n; whether the first n blocks are frozen or
fine-tuned; whether blocks above n keep their pretrained weights or are re-initialised;
which parameter kinds train; the learning-rate policy; and the solver. Presets
(``freeze``, ``reinit``, ...) are dataclass subclasses with their own defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from transferlab.errors import bad_value
from transferlab.models.base import BlockModel, reset_parameters
from transferlab.models.heads import replace_head

KINDS = ("all", "bn", "weights", "head")
_BN = nn.modules.batchnorm._BatchNorm


@dataclass
class ProtocolConfig:
    """The decisions that define a transfer protocol."""

    depth: int | None = field(default=None, metadata={
        "help": "transfer depth n: blocks 1..n are copied (and frozen if freeze_prefix); "
                "None means all L blocks"})
    upto: str | None = field(default=None, metadata={
        "help": "transfer depth given by block name: blocks up to and including this one "
                "(resolved against the model; overrides depth)"})
    freeze_prefix: bool = field(default=True, metadata={
        "help": "freeze the first n blocks (BatchNorm statistics included) instead of "
                "fine-tuning them"})
    reinit_above: bool = field(default=False, metadata={
        "help": "re-initialise blocks n+1..L instead of keeping their pretrained weights"})
    train_kinds: str = field(default="all", metadata={
        "help": "parameter kinds that train in non-frozen blocks: all, bn (BatchNorm only), "
                "weights (conv/linear weights only) or head (none; only the head trains)"})
    lr_mult: float = field(default=1.0, metadata={
        "help": "learning-rate multiplier for pretrained blocks that train "
                "(TrainConfig.lr_mult overrides it)"})
    solver: str = field(default="sgd", metadata={
        "help": "'sgd' (the training loop) or 'lbfgs' (a direct logistic-regression fit of "
                "the head on cached features; needs every block frozen)"})

    def __post_init__(self) -> None:
        if self.depth is not None and (not isinstance(self.depth, int) or self.depth < 0):
            raise bad_value("depth", self.depth, "an integer >= 0")
        if self.train_kinds not in KINDS:
            raise bad_value("train_kinds", self.train_kinds, ", ".join(KINDS))
        if self.lr_mult < 0:
            raise bad_value("lr_mult", self.lr_mult, "a number >= 0")
        if self.solver not in ("sgd", "lbfgs"):
            raise bad_value("solver", self.solver, "'sgd' or 'lbfgs'")
        if self.solver == "lbfgs" and not (self.freeze_prefix and self.depth is None
                                           and self.upto is None):
            raise bad_value("solver", self.solver, "'lbfgs' only with every block frozen",
                            "use freeze_prefix=True and depth=None")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Plan:
    """A protocol applied to one model: what trains, what is frozen, at which lr."""

    model: BlockModel
    depth: int
    groups: list[dict]                 # {"name", "params", "lr_scale"} for the optimiser
    frozen_modules: list[nn.Module]    # held in eval mode while training
    frozen_prefix: int                 # leading blocks with nothing trainable: cacheable
    solver: str
    reinitialised: list[str]           # names of re-initialised blocks

    def trainable_names(self) -> set[str]:
        return {n for n, p in self.model.named_parameters() if p.requires_grad}


def _kind_params(block: nn.Module, kinds: str) -> list[nn.Parameter]:
    if kinds == "all":
        return list(block.parameters())
    if kinds == "bn":
        return [p for m in block.modules() if isinstance(m, _BN) for p in m.parameters(False)]
    if kinds == "weights":
        return [m.weight for m in block.modules()
                if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]
    return []


def resolve_depth(cfg: ProtocolConfig, model: BlockModel) -> int:
    """The transfer depth of ``cfg`` for ``model``; an error if it does not fit the model."""
    n_blocks = model.num_blocks
    if cfg.upto is not None:
        if cfg.upto not in model.block_names:
            raise bad_value("block", cfg.upto, "one of this model's blocks: "
                            + ", ".join(model.block_names), "pick a name from this list")
        return model.block_names.index(cfg.upto) + 1
    depth = n_blocks if cfg.depth is None else cfg.depth
    if depth > n_blocks:
        raise bad_value("depth", depth, f"0..{n_blocks} for this model "
                        f"(blocks: {', '.join(model.block_names)})", "pass a smaller depth")
    return depth


def make_plan(cfg: ProtocolConfig, model: BlockModel, num_classes: int,
              generator: torch.Generator | None = None, lr_mult: float | None = None,
              layer_decay: float | None = None) -> Plan:
    """Apply ``cfg`` to ``model`` in place (re-initialise, replace the head, set
    ``requires_grad``) and return the plan the training loop follows."""
    n_blocks = model.num_blocks
    depth = resolve_depth(cfg, model)
    reinit = []
    if cfg.reinit_above:
        for i in range(depth, n_blocks):
            reset_parameters(model.blocks[i], generator)
            reinit.append(model.block_names[i])
    replace_head(model, num_classes, generator)
    mult = cfg.lr_mult if lr_mult is None else lr_mult
    model.requires_grad_(False)
    groups, frozen_modules = [], []
    for i, block in enumerate(model.blocks):
        frozen = cfg.freeze_prefix and i < depth
        params = [] if frozen else _kind_params(block, cfg.train_kinds)
        for p in params:
            p.requires_grad_(True)
        if not params:
            frozen_modules.append(block)  # nothing trains: eval mode, dropout off, BN frozen
        # A block that trains keeps BatchNorm in train mode, also when its affine parameters
        # are frozen (conv-only): moving conv weights under stale running statistics makes
        # the normalisation wrong and training collapses (measured: chance accuracy).
        if params:
            pretrained = model.block_names[i] not in reinit
            scale = mult * (layer_decay ** (n_blocks - 1 - i) if layer_decay else 1.0) \
                if pretrained else 1.0
            groups.append({"name": model.block_names[i], "params": params, "lr_scale": scale})
    model.head.requires_grad_(True)
    groups.append({"name": "head", "params": list(model.head.parameters()), "lr_scale": 1.0})
    prefix = 0
    while prefix < n_blocks and model.blocks[prefix] in frozen_modules:
        prefix += 1
    return Plan(model, depth, groups, frozen_modules, prefix, cfg.solver, reinit)
