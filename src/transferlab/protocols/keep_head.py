"""``continue``, ``continue-norm-only``, ``continue-head-only``: train on with the model's head.

Every other protocol replaces the head, since a source's classes are not the target's. A
model that already has a head for the target's classes (an ensemble member shifted towards
a fine-tuned reference, whose head it received: ``transferlab.ensemble``) continues
training with that head: everything (``continue``), only the normalisation affine and the
head (``continue-norm-only``), or only the head on cached features (``continue-head-only``).
The backbone trains at ``lr_mult`` x lr (default 0.1, as ``finetune``).
A head with another number of outputs than the target's classes is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transferlab.errors import UserError
from transferlab.models.heads import head_linear
from transferlab.protocols.core import Plan, ProtocolConfig, make_plan
from transferlab.protocols.registry import register_protocol


@dataclass
class ContinueConfig(ProtocolConfig):
    freeze_prefix: bool = False
    default_lr_mult: ClassVar[float] = 0.1

    def plan(self, model, num_classes, generator=None, lr_mult=None, layer_decay=None) -> Plan:
        outputs = head_linear(model).out_features
        if outputs != num_classes:
            raise UserError(f"protocol='continue' keeps the model's head, which has {outputs} "
                            f"outputs: allowed is a head with the target's {num_classes} "
                            "classes; use 'finetune' (a fresh head) for a new task")
        head = model.head
        plan = make_plan(self, model, num_classes, generator, lr_mult, layer_decay)
        model.head = head  # make_plan put a fresh one: the kept head replaces it again
        if model.arch is not None:
            model.arch = {**model.arch, "num_classes": num_classes}
        head.requires_grad_(True)
        plan.groups[-1] = {"name": "head", "params": list(head.parameters()), "lr_scale": 1.0}
        return plan


@dataclass
class ContinueNormConfig(ContinueConfig):
    train_kinds: str = "norm"


@dataclass
class ContinueHeadConfig(ContinueConfig):
    freeze_prefix: bool = True


register_protocol("continue", ContinueConfig, takes_depth=False,
                  summary="keep the model's head (already for the target's classes); "
                          "everything trains, backbone at lr_mult x lr (default 0.1)")
register_protocol("continue-norm-only", ContinueNormConfig, takes_depth=False,
                  summary="keep the model's head; only it and the normalisation affine train")
register_protocol("continue-head-only", ContinueHeadConfig, takes_depth=False,
                  summary="keep the model's head; every block frozen, the head trains")
