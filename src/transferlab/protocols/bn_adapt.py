"""``bn-adapt``: AdaBN (Li et al., 2016): re-estimate BatchNorm statistics on the target.

No gradient step touches the backbone. Every BatchNorm's running mean and variance are
reset and re-estimated by one pass over the target's training inputs in train mode (so
each BatchNorm normalises with batch statistics during the pass, as it did when the
statistics were first estimated), as a cumulative average weighted by batch size: the
running mean is then exactly the per-channel mean of the layer's input over the training
set, and the running variance the size-weighted average of the batch variances. Other
modules (dropout) stay in eval mode. Affine scales and shifts keep their pretrained values.

The new head is then fitted by the linear probe (L-BFGS, L2 picked on validation) on the
adapted features: AdaBN's result is the adapted backbone, and a probe is the cheapest
head that makes it comparable with ``linear-probe`` on the unadapted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from transferlab.errors import UserError, bad_value
from transferlab.protocols.core import Plan, ProtocolConfig, make_plan
from transferlab.protocols.linear_probe import fit_probe
from transferlab.protocols.registry import register_protocol

_BN = nn.modules.batchnorm._BatchNorm


@dataclass
class BNAdaptConfig(ProtocolConfig):
    freeze_prefix: bool = True
    solver: ClassVar[str] = "adabn+lbfgs"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.freeze_prefix and self.depth is None and self.upto is None):
            raise bad_value("freeze_prefix/depth", (self.freeze_prefix, self.depth),
                            "(True, None) for bn-adapt: no parameter of a block trains")

    def plan(self, model, num_classes, generator=None, lr_mult=None, layer_decay=None) -> Plan:
        bns = [m for m in model.blocks.modules() if isinstance(m, _BN) and m.track_running_stats]
        if not bns:
            types = sorted({type(m).__name__ for m in model.blocks.modules()
                            if any(True for _ in m.parameters(False))})
            raise UserError("protocol='bn-adapt' is invalid for this model: it has no "
                            f"BatchNorm with running statistics (module types: "
                            f"{', '.join(types)}); use 'linear-probe'")
        plan = make_plan(self, model, num_classes, generator, lr_mult, layer_decay)
        # The statistics change in fit, so nothing can be cached before it: the fit sees
        # the raw inputs and computes the adapted features itself.
        plan.frozen_prefix = 0
        plan.state["bns"] = bns
        return plan

    def fit(self, plan: Plan, feats: dict, task, cfg, generator=None,
            progress: bool = False) -> dict:
        from transferlab.features import prefix_features

        model = plan.model
        adapt_bn_stats(model, feats["train"], cfg.batch_size, plan.state["bns"])
        depth = model.num_blocks
        f_tr = prefix_features(model, feats["train"], depth, channels_last=cfg.channels_last)
        f_va = prefix_features(model, feats["val"], depth, channels_last=cfg.channels_last)
        return fit_probe(model, f_tr, task.y_train, f_va, task.y_val, cfg.l2)


@torch.no_grad()
def adapt_bn_stats(model: nn.Module, x: torch.Tensor, batch_size: int,
                   bns: list[nn.Module] | None = None) -> None:
    """Re-estimate the running statistics of ``bns`` (default: every BatchNorm of
    ``model.blocks``) from ``x`` (N, ...) raw inputs; nothing else changes.

    The momentum of batch b is n_b / (n_1 + ... + n_b): a cumulative average weighted by
    batch size (PyTorch's ``momentum=None`` weights every batch alike).
    """
    if bns is None:
        bns = [m for m in model.blocks.modules() if isinstance(m, _BN) and m.track_running_stats]
    was_training = model.training
    momenta = [m.momentum for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.train()
    n = len(x)
    if n < 2:
        raise UserError(f"bn-adapt needs at least 2 training examples to estimate BatchNorm "
                        f"statistics, got {n}; use 'linear-probe'")
    # Batches of near-equal size (never a batch of one, which train-mode BatchNorm refuses).
    n_batches = min(-(-n // batch_size), n // 2)
    bounds = [n * k // n_batches for k in range(n_batches + 1)]
    seen = 0
    try:
        for a, b in zip(bounds[:-1], bounds[1:]):
            seen += b - a
            for m in bns:
                m.momentum = (b - a) / seen
            model.features(x[a:b], model.num_blocks)
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.train(was_training)
        for m in bns:
            m.train(was_training)


register_protocol("bn-adapt", BNAdaptConfig, takes_depth=False,
                  summary="AdaBN: BatchNorm statistics re-estimated on the target's training "
                          "inputs (no gradient step), then the head fitted by the linear probe")
