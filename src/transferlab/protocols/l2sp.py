"""``l2sp``: fine-tuning regularised towards the pretrained weights (Li et al., 2018).

Everything trains, as in ``finetune``, with the loss

    mean CE + alpha/2 * ||w - w0||^2 (pretrained blocks) + beta/2 * ||w_head||^2

where w0 are the source weights. The penalty replaces weight decay: the optimiser's
``weight_decay`` is 0 for every group of this protocol (decay would pull towards 0, not
towards w0). Norm scales and shifts and biases are penalised like any other tensor of the
pretrained blocks (the paper penalises all of w_S). Pretrained blocks train at the full lr
by default (``lr_mult`` 1.0): the penalty, not a smaller lr, keeps them close to w0. With
SGD, keep ``lr * alpha`` below about 1 (the penalty's own step is stable only then).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from transferlab.errors import bad_value
from transferlab.protocols.core import Plan, ProtocolConfig, make_plan
from transferlab.protocols.registry import register_protocol


@dataclass
class L2SPConfig(ProtocolConfig):
    freeze_prefix: bool = False
    alpha: float = field(default=0.01, metadata={
        "help": "weight of alpha/2 * ||w - w0||^2 over the pretrained blocks that train "
                "(Li et al. 2018 use 0.1 to 1 with lr 0.01)"})
    beta: float = field(default=0.01, metadata={
        "help": "weight of beta/2 * ||w||^2 over the new head (replaces weight decay there)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0:
                raise bad_value(name, v, "a number >= 0")

    def plan(self, model, num_classes, generator=None, lr_mult=None, layer_decay=None) -> Plan:
        plan = make_plan(self, model, num_classes, generator, lr_mult, layer_decay)
        for g in plan.groups:
            g["weight_decay"] = 0.0  # the penalty is the regulariser
        pretrained = {g["name"] for g in plan.groups} - {"head"} - set(plan.reinitialised)
        plan.state["anchor"] = [(p, p.detach().clone()) for g in plan.groups
                                if g["name"] in pretrained for p in g["params"]]
        plan.state["head"] = [p for g in plan.groups if g["name"] == "head"
                              for p in g["params"] if p.dim() > 1]
        return plan

    def loss_term(self, plan: Plan) -> torch.Tensor | None:
        """alpha/2 sum ||w - w0||^2 + beta/2 sum ||w_head||^2 (head biases not penalised)."""
        terms = []
        if self.alpha and plan.state["anchor"]:
            terms.append(0.5 * self.alpha * sum((p - p0).pow(2).sum()
                                                for p, p0 in plan.state["anchor"]))
        if self.beta and plan.state["head"]:
            terms.append(0.5 * self.beta * sum(p.pow(2).sum() for p in plan.state["head"]))
        return sum(terms) if terms else None


register_protocol("l2sp", L2SPConfig, takes_depth=False,
                  summary="fine-tune everything with alpha/2 ||w - w0||^2 towards the "
                          "pretrained weights + beta/2 ||w_head||^2 instead of weight decay "
                          "(Li et al. 2018)")
