"""``probe:n``: the linear probe on the output of block n (the guide's "features from
earlier layers").

The model is cut after block n and gets a new head, ``PooledHead("avg", Linear(F, K))``:
the block's output averaged over its positions (conv features (N, C, H, W) -> (N, C) by
global average pooling; text ``Hidden`` states (N, L, H) -> (N, H), the mean over unmasked
tokens; vectors (N, D) unchanged), then a multinomial logistic regression fitted by the
L-BFGS of ``linear-probe`` (``fit_probe``, L2 picked on validation). Every kept block is
frozen, so the features are the frozen prefix of depth n: a sweep computes them once and
shares them with ``freeze:n`` (same prefix digest), built from the cached depth n-1.

``probe:L`` (n = the number of blocks) is exactly ``linear-probe``: the model's own head
and its pooling (flatten for CNNs and MLPs, the encoder's mean or CLS for text), nothing
cut. Pooling below L is what keeps a probe on an early conv block small (C, not C x H x W
features) and the same for every spatial size.

The trained model has n blocks (``block_names`` cut too) and ``arch=None``: it cannot be
rebuilt from ``build_model`` (its saved weights load into a model cut the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from transferlab.errors import bad_value
from transferlab.models.pooling import PooledHead, pool_features
from transferlab.protocols.core import Plan, ProtocolConfig, make_plan, resolve_depth
from transferlab.protocols.linear_probe import fit_probe
from transferlab.protocols.registry import register_protocol


@dataclass
class ProbeConfig(ProtocolConfig):
    freeze_prefix: bool = True
    solver: ClassVar[str] = "lbfgs"
    needs_features: ClassVar[bool] = True  # the fit reads cached features, no augmentation

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.freeze_prefix or self.reinit_above or self.train_kinds != "all":
            raise bad_value("freeze_prefix/reinit_above/train_kinds",
                            (self.freeze_prefix, self.reinit_above, self.train_kinds),
                            "(True, False, 'all') for probe:n: no block trains",
                            "use 'freeze:n' to fine-tune the blocks above n")

    def plan(self, model, num_classes, generator=None, lr_mult=None, layer_decay=None) -> Plan:
        """Cut ``model`` after block n (n < L) with a pooling head; every block frozen."""
        depth = resolve_depth(self, model)
        cut = depth < model.num_blocks
        if cut:
            del model.blocks[depth:]
            model.block_names = model.block_names[:depth]
            old = model.head
            # in_features is not known before the features are: sized in ``fit``.
            model.head = PooledHead("avg", nn.Linear(1, num_classes)).to(
                next(old.parameters()).device)
            model.arch = None  # build_model cannot rebuild a cut model
        plan = make_plan(self, model, num_classes, generator, lr_mult, layer_decay)
        plan.state["cut"] = cut
        return plan

    def fit(self, plan: Plan, feats: dict, task, cfg, generator=None,
            progress: bool = False) -> dict:
        """Fit the head on ``feats`` (block n's output per split) by L-BFGS."""
        model = plan.model
        if plan.state.get("cut"):
            width = pool_features(feats["train"][:1], "avg").shape[1]
            head = model.head.linear
            model.head.linear = nn.Linear(width, head.out_features, device=head.weight.device)
        return fit_probe(model, feats["train"], task.y_train, feats["val"], task.y_val, cfg.l2)


register_protocol("probe", ProbeConfig, takes_depth=True,
                  summary="linear probe (L-BFGS, L2 on validation) on the output of block n, "
                          "averaged over positions (conv: global average pool; text: mean "
                          "over tokens); probe:L is linear-probe")
