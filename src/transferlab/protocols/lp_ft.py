"""``lp-ft``: linear probe, then fine-tune everything from that head (Kumar et al., ICLR 2022).

Fine-tuning with a freshly initialised head sends large, random gradients through the
pretrained features in the first steps and distorts them; LP-FT first fits the head as a
linear probe on the frozen pretrained features (``linear_probe.fit_probe``: L-BFGS, L2
chosen on validation or by cross-validation), then trains every block from that head with
the SGD loop, as ``finetune`` does, every parameter (the probe's head too) at ``lr_mult`` x lr
(default 0.1), the small learning rate of Kumar et al.

The probe stage fits on the train split only (``refit=False``): the fine-tuning stage then
chooses its epoch (``patience``) and the sweep compares protocols on the val split, which
must not have trained the head. Everything else (augmentation, schedule) is the loop's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from transferlab.errors import bad_value
from transferlab.protocols.core import Plan, ProtocolConfig
from transferlab.protocols.registry import register_protocol


@dataclass
class LPFTConfig(ProtocolConfig):
    freeze_prefix: bool = False
    lp_l2: float | None = field(default=None, metadata={
        "help": "L2 penalty of the linear-probe stage (mean cross-entropy + lp_l2/2 ||W||^2); "
                "None: chosen on the val split, or by cross-validation when it is tiny "
                "(TrainConfig.l2, when set, is used instead)"})
    # Kumar et al. fine-tune at a small learning rate; as ``finetune``: backbone 0.1 x lr,
    # and here the probe's head too (at the full lr it left the probe's solution in the
    # first steps: digits 5-9 from a 0-4 source, 10 epochs, test accuracy 0.585 at 5 shots
    # and 0.833 at 20 with the head at the full lr, 0.696 and 0.900 with it at lr_mult)
    default_lr_mult: ClassVar[float] = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.freeze_prefix or self.reinit_above or self.depth not in (None,) \
                or self.train_kinds != "all":
            raise bad_value("freeze_prefix/reinit_above/depth/train_kinds",
                            (self.freeze_prefix, self.reinit_above, self.depth,
                             self.train_kinds),
                            "(False, False, None, 'all') for lp-ft: every pretrained block "
                            "fine-tunes after the probe", "use 'linear-probe' or 'freeze:n'")
        if self.lp_l2 is not None and (isinstance(self.lp_l2, bool)
                                       or not isinstance(self.lp_l2, (int, float))
                                       or not math.isfinite(self.lp_l2) or self.lp_l2 <= 0):
            raise bad_value("lp_l2", self.lp_l2, "a finite number > 0, or None",
                            "e.g. lp_l2=0.01, or leave it out to choose it on validation")

    def plan(self, model, num_classes, generator=None, lr_mult=None, layer_decay=None) -> Plan:
        """``make_plan``'s plan with the head's lr scale lowered to the backbone's
        (``lr_mult``): the probe's head fine-tunes at the same small lr."""
        plan = super().plan(model, num_classes, generator, lr_mult, layer_decay)
        scale = self.default_lr_mult if lr_mult is None else lr_mult
        for g in plan.groups:
            if g.get("name") == "head":
                g["lr_scale"] = min(g["lr_scale"], scale)
        return plan

    def fit(self, plan: Plan, feats: dict, task, cfg, generator=None,
            progress: bool = False) -> None:
        """The probe stage: fit the fresh head on the pretrained top features (eval mode, no
        gradient), record it in ``plan.state["lp"]``, then return None so that the SGD loop
        fine-tunes everything from it. ``feats``: the raw inputs per split (no frozen
        prefix: every block trains)."""
        from transferlab.features import prefix_features
        from transferlab.protocols.linear_probe import fit_probe

        model = plan.model
        was = model.training
        start = plan.frozen_prefix
        with torch.no_grad():
            top = {s: prefix_features(model, feats[s], model.num_blocks, start=start)
                   for s in ("train", "val")}
        model.train(was)
        l2 = cfg.l2 if cfg.l2 is not None else self.lp_l2
        info = fit_probe(model, top["train"], task.y_train, top["val"], task.y_val, l2,
                         refit=False)
        plan.state["lp"] = info
        return None


register_protocol("lp-ft", LPFTConfig, takes_depth=False,
                  summary="linear probe first (L-BFGS on the frozen features, train split), "
                          "then everything fine-tunes from that head, backbone at lr_mult x "
                          "lr (default 0.1; Kumar et al. 2022)")
