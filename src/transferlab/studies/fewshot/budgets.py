"""Training budgets of the few-shot study: the source's pretraining and every episode's fit.

``quick`` is for a CPU (k = 1, 5, 10 and 10 episodes by default; MNIST -> KMNIST in minutes
on an idle 2-core CPU); ``standard`` is for a GPU (k = 1, 5, 10, 20, 50 episodes, a wider
network, longer fits); ``gpu`` is quick's fits at a size one GPU session affords for a
pretrained EfficientNet-Lite0 (``--source efficientnet_lite0 --target cifar10 --size 32``:
k = 1, 5, 10, 10 episodes, every default protocol including the ``-frozen-stats`` variants:
270 episode fits). ``tiny`` exists for tests.

Every episode is fitted full-batch (``batch_size`` at least the support set of the largest k
for 10 classes), so a trial's number of optimiser steps is its number of ``epochs`` whatever
k is: the protocols are compared at the same number of steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transferlab.errors import bad_value


@dataclass(frozen=True)
class Budget:
    """One budget: the source (pretraining) and the episodes' fits."""

    name: str
    shots: tuple[int, ...]        # default k values
    episodes: int                 # default support sets per k
    epochs: int                   # optimiser steps of an episode's SGD fit (full batch)
    lr: float                     # head learning rate; pretrained parts get lr x lr_mult
    batch_size: int               # >= the support set: full-batch steps
    pretrain_epochs: int
    pretrain_per_class: int | None  # source examples per class (None: all)
    size: int | None              # image side (None: native, at least 16)
    width: int                    # convnet channels of conv1 (later stages 2x)
    fc_width: int

    def train(self) -> dict:
        """TrainConfig fields every episode's fit uses (protocols add their lr_mult)."""
        # min_steps 0: engine.py reads epochs as full-batch steps; the per-episode loop
        # must train exactly as many, not be raised to TrainConfig's floor
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size,
                "min_steps": 0}

    def pretrain_train(self) -> dict:
        return {"epochs": self.pretrain_epochs, "batch_size": 128, "lr": 0.05, "min_steps": 0}

    def arch_kwargs(self) -> dict:
        return {"width": self.width, "fc_width": self.fc_width}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MIN_SIZE = 16  # the convnet pools three times; 8x8 digits are upsampled

BUDGETS: dict[str, Budget] = {
    "tiny": Budget("tiny", shots=(1, 4), episodes=2, epochs=3, lr=0.05, batch_size=128,
                   pretrain_epochs=2, pretrain_per_class=30, size=8, width=4, fc_width=16),
    "quick": Budget("quick", shots=(1, 5, 10), episodes=10, epochs=100, lr=0.1,
                    batch_size=128, pretrain_epochs=8, pretrain_per_class=1000, size=None,
                    width=16, fc_width=128),
    "standard": Budget("standard", shots=(1, 5, 10, 20), episodes=50, epochs=100, lr=0.05,
                       batch_size=256, pretrain_epochs=30, pretrain_per_class=None,
                       size=None, width=32, fc_width=256),
    "gpu": Budget("gpu", shots=(1, 5, 10), episodes=10, epochs=100, lr=0.1,
                  batch_size=128, pretrain_epochs=30, pretrain_per_class=None, size=None,
                  width=32, fc_width=256),
}
PUBLIC = ("quick", "standard", "gpu")

# Practitioners' settings per protocol (TrainConfig fields on top of the budget's): a
# pretrained weight matrix moves at 0.1 x the head's lr (the CS231n rule, and what
# ``finetune`` does by default); BatchNorm scales and shifts are a few hundred numbers that
# start at a good point, so ``bn-only`` trains them at the head's lr (lr_mult 1), as the
# BN-tuning few-shot papers do. linear-probe and bn-adapt have no SGD fit (L-BFGS probe, L2
# chosen on validation when k >= 4, else the strongest of its grid).
LR_MULT = {"conv-only": 0.1, "conv-only-frozen-stats": 0.1, "finetune": 0.1,
           "finetune-frozen-stats": 0.1, "bn-only": 1.0, "bn-only-frozen-stats": 1.0,
           "norm-only": 1.0, "norm-only-frozen-stats": 1.0, "head-only": 1.0, "l2sp": 0.1,
           "l2sp-frozen-stats": 0.1}
NO_SGD = ("linear-probe", "bn-adapt")


def protocol_train(budget: Budget, protocol: str) -> dict:
    """The TrainConfig fields of ``protocol``'s episodes under ``budget``."""
    train = budget.train()
    family = protocol.split(":", 1)[0]
    if family in LR_MULT:
        train["lr_mult"] = LR_MULT[family]
    return train


def get_budget(name: str | Budget) -> Budget:
    if isinstance(name, Budget):
        return name
    if name not in BUDGETS:
        raise bad_value("--budget", name, ", ".join(PUBLIC), "quick runs on a CPU")
    return BUDGETS[name]
