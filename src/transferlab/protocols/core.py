"""What every transfer protocol decides, and how a decision becomes a training plan.

A protocol is fixed by: the transfer depth n; whether the first n blocks are frozen or
fine-tuned; whether blocks above n keep their pretrained weights or are re-initialised;
which parameter kinds train; whether normalisation statistics adapt; and its behaviour.
As in huggingface/peft, a registered protocol is its config *and* its implementation: a
``ProtocolConfig`` subclass sets defaults and may override the hooks

- ``plan(model, num_classes, ...) -> Plan``   what trains (default: ``make_plan``),
- ``fit(plan, feats, task, cfg, ...) -> dict | None``   a custom fit instead of the SGD
  loop (``None``: use the loop), returning extra metrics,
- ``loss_term(plan) -> Tensor | None``   added to the cross-entropy at every SGD step,
- ``after_step(plan) -> None``   called after every optimiser step.

The learning-rate multiplier has one home, ``TrainConfig.lr_mult``; a protocol only says
what ``None`` there means (``default_lr_mult``), see ``resolve_train``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from transferlab.errors import UserError, bad_value
from transferlab.models.base import BlockModel, reset_parameters
from transferlab.models.heads import replace_head

if TYPE_CHECKING:  # imported lazily at run time: train imports nothing from protocols
    from transferlab.data import Task
    from transferlab.train import TrainConfig

KINDS = ("all", "norm", "bn", "weights", "head")
_BN = nn.modules.batchnorm._BatchNorm
# Modules with running statistics: BatchNorm*, SyncBatchNorm, InstanceNorm* (when tracking).
_STATS_NORM = nn.modules.batchnorm._NormBase
_NORM_TYPES = tuple(t for t in (_STATS_NORM, nn.LayerNorm, nn.GroupNorm,
                                getattr(nn, "RMSNorm", None)) if t is not None)
_CONV_LINEAR = (nn.modules.conv._ConvNd, nn.Linear)
_ATTN_PROJ = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


@dataclass
class ProtocolConfig:
    """The decisions that define a transfer protocol (fields) and its behaviour (hooks)."""

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
        "help": "parameter kinds that train in non-frozen blocks: all; norm (affine of every "
                "normalisation layer: BatchNorm, LayerNorm, GroupNorm, InstanceNorm, ...); bn "
                "(BatchNorm only); weights (conv, linear and attention-projection weights); "
                "head (none; only the head trains)"})
    freeze_norm_stats: bool = field(default=False, metadata={
        "help": "keep the running statistics of normalisation layers (BatchNorm, tracking "
                "InstanceNorm) frozen, in eval mode, in blocks that train (the usual few-shot "
                "choice); False lets them adapt to the target"})

    # What TrainConfig.lr_mult=None means for this protocol (not a field: one home).
    default_lr_mult: ClassVar[float] = 1.0
    # Name of the fit, reported in Plan.solver: "sgd" is the training loop.
    solver: ClassVar[str] = "sgd"
    # The custom fit reads frozen-prefix features even when augmentation is on.
    needs_features: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.depth is not None and (not isinstance(self.depth, int) or self.depth < 0):
            raise bad_value("depth", self.depth, "an integer >= 0")
        if self.train_kinds not in KINDS:
            raise bad_value("train_kinds", self.train_kinds, ", ".join(KINDS))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # -- hooks: override in a protocol's config class ------------------------------------
    def plan(self, model: BlockModel, num_classes: int,
             generator: torch.Generator | None = None, lr_mult: float | None = None,
             layer_decay: float | None = None) -> "Plan":
        """Apply the protocol to ``model`` in place and return the plan (see ``make_plan``)."""
        return make_plan(self, model, num_classes, generator, lr_mult, layer_decay)

    def fit(self, plan: "Plan", feats: dict, task: "Task", cfg: "TrainConfig",
            generator: torch.Generator | None = None, progress: bool = False) -> dict | None:
        """Fit ``plan.model`` without the SGD loop; return extra metrics, or ``None`` to use
        the loop. ``feats``: split -> inputs of block ``plan.frozen_prefix`` (on device)."""
        return None

    def loss_term(self, plan: "Plan") -> torch.Tensor | None:
        """A scalar added to the mean cross-entropy at every step (``None``: nothing)."""
        return None

    def after_step(self, plan: "Plan") -> None:
        """Called after every optimiser step (e.g. a projection); default: nothing."""


@dataclass
class Plan:
    """A protocol applied to one model: what trains, what is frozen, at which lr."""

    model: BlockModel
    depth: int
    groups: list[dict]                 # {"name", "params", "lr_scale"[, "weight_decay"]}
    frozen_modules: list[nn.Module]    # held in eval mode while training
    frozen_prefix: int                 # leading blocks with nothing trainable: cacheable
    solver: str
    reinitialised: list[str]           # names of re-initialised blocks
    state: dict = field(default_factory=dict)  # per-run state of a protocol's hooks

    def trainable_names(self) -> set[str]:
        return {n for n, p in self.model.named_parameters() if p.requires_grad}


def is_norm(m: nn.Module) -> bool:
    """A normalisation layer: a torch norm class, or a class named ``*Norm`` (HF's
    ``T5LayerNorm``, ``LlamaRMSNorm``, ... that are not ``nn.LayerNorm`` subclasses)."""
    return isinstance(m, _NORM_TYPES) or type(m).__name__.endswith(
        ("Norm", "Norm1d", "Norm2d", "Norm3d"))


def _unique(params) -> list[nn.Parameter]:
    seen, out = set(), []
    for p in params:
        if p is not None and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _kind_params(block: nn.Module, kinds: str) -> list[nn.Parameter]:
    """The parameters of ``block`` of kind ``kinds`` (see ``KINDS``), in module order."""
    if kinds == "all":
        return list(block.parameters())
    if kinds == "bn":
        return _unique(p for m in block.modules() if isinstance(m, _BN)
                       for p in m.parameters(False))
    if kinds == "norm":
        return _unique(p for m in block.modules() if is_norm(m) for p in m.parameters(False))
    if kinds == "weights":
        out = []
        for m in block.modules():
            if isinstance(m, _CONV_LINEAR) or type(m).__name__ == "Conv1D":  # HF GPT-2
                out.append(getattr(m, "weight", None))
            elif isinstance(m, nn.MultiheadAttention):  # out_proj is an nn.Linear
                out += [getattr(m, n, None) for n in _ATTN_PROJ]
        return _unique(p for p in out if isinstance(p, nn.Parameter))
    return []


def _module_types(blocks: list[nn.Module]) -> str:
    names = []
    for b in blocks:
        for m in b.modules():
            if any(True for _ in m.parameters(False)) and type(m).__name__ not in names:
                names.append(type(m).__name__)
    return ", ".join(names) or "none with parameters"


def _check_kind_matches(kind: str, blocks: list[nn.Module]) -> None:
    """A kind that selects nothing in the blocks that should train is an error, never a
    silent head-only run."""
    if kind in ("all", "head") or not blocks or any(_kind_params(b, kind) for b in blocks):
        return
    present = [k for k in KINDS if k not in ("all", "head")
               and any(_kind_params(b, k) for b in blocks)]
    fix = {"bn": "protocol 'norm-only' trains the affine of every normalisation layer "
                 "(LayerNorm, GroupNorm, ...)" if "norm" in present else
                 "this model has no normalisation layer of any kind (so 'norm-only' fails "
                 "too): use 'conv-only' or 'finetune'",
           "norm": "this model has no normalisation layer: use 'conv-only' or 'finetune'",
           "weights": "use 'finetune' (train_kinds='all')"}[kind]
    raise UserError(
        f"train_kinds={kind!r} is invalid for this model: it matches no parameter of the "
        f"blocks that train; kinds present: {', '.join(present) or 'none'} (and all, head); "
        f"module types: {_module_types(blocks)}; {fix}")


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


def check_model(cfg: ProtocolConfig, model: BlockModel) -> int:
    """Fail early (before data is loaded) if ``cfg`` does not fit ``model``; the depth."""
    depth = resolve_depth(cfg, model)
    start = depth if cfg.freeze_prefix else 0
    _check_kind_matches(cfg.train_kinds, list(model.blocks)[start:])
    return depth


def resolve_train(cfg: ProtocolConfig, train: "TrainConfig") -> "TrainConfig":
    """``train`` with ``lr_mult=None`` replaced by the protocol's default, so that the
    recorded config (and a sweep's trial key) holds the value that ran."""
    if train.lr_mult is not None:
        return train
    return dataclasses.replace(train, lr_mult=float(type(cfg).default_lr_mult))


def make_plan(cfg: ProtocolConfig, model: BlockModel, num_classes: int,
              generator: torch.Generator | None = None, lr_mult: float | None = None,
              layer_decay: float | None = None) -> Plan:
    """Apply ``cfg`` to ``model`` in place (re-initialise, replace the head, set
    ``requires_grad``) and return the plan the training loop follows.

    ``lr_mult``: backbone lr multiplier (None: the protocol's ``default_lr_mult``).
    """
    n_blocks = model.num_blocks
    depth = check_model(cfg, model)
    reinit = []
    if cfg.reinit_above:
        for i in range(depth, n_blocks):
            reset_parameters(model.blocks[i], generator)
            reinit.append(model.block_names[i])
    replace_head(model, num_classes, generator)
    mult = type(cfg).default_lr_mult if lr_mult is None else lr_mult
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
        # freeze_norm_stats opts into the other choice: statistics stay as pretrained.
        if params:
            if cfg.freeze_norm_stats:
                frozen_modules += [m for m in block.modules()
                                   if isinstance(m, _STATS_NORM) and m.track_running_stats]
            pretrained = model.block_names[i] not in reinit
            scale = mult * (layer_decay ** (n_blocks - 1 - i) if layer_decay else 1.0) \
                if pretrained else 1.0
            groups.append({"name": model.block_names[i], "params": params, "lr_scale": scale})
    model.head.requires_grad_(True)
    groups.append({"name": "head", "params": list(model.head.parameters()), "lr_scale": 1.0})
    prefix = 0
    while prefix < n_blocks and any(model.blocks[prefix] is m for m in frozen_modules):
        prefix += 1
    return Plan(model, depth, groups, frozen_modules, prefix, type(cfg).solver, reinit)
