"""Pairs (source -> target) and training budgets of the ensembles study.

``quick`` fits a shared 2-core CPU: small images (16 px), a narrow convnet, the source
trained on a sample, the target few-shot (the paper's setting: transfer is for small
target sets). ``standard`` is for a GPU. ``tiny`` exists for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Pair:
    source: str   # task string without budget keys
    target: str


PAIRS = {
    "digits": Pair("digits:classes=0-4", "digits:classes=5-9"),
    "mnist-kmnist": Pair("mnist", "kmnist"),
    "cifar10": Pair("cifar10:half=A:split=dissimilar", "cifar10:half=B:split=dissimilar"),
}


@dataclass(frozen=True)
class Budget:
    name: str
    source_per_class: int | None  # pretraining examples per class (None: all)
    target_per_class: int         # k labelled target examples per class (validation incl.)
    size: int
    width: int
    fc_width: int
    pretrain_epochs: int
    epochs: int                   # full fine-tune (independent, references)
    tiny_epochs: int              # the tiny fine-tune of shift / tiny
    batch_size: int = 32
    lr: float = 0.05

    def tasks(self, pair: Pair) -> tuple[str, str]:
        src = pair.source + f":size={self.size}"
        if self.source_per_class:
            src += f":per_class={self.source_per_class}"
        return src, pair.target + f":per_class={self.target_per_class}:size={self.size}"

    def train(self) -> dict:
        # min_steps 0: compute is matched in epochs (full vs matched vs tiny strategies)
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "min_steps": 0}

    def pretrain(self) -> dict:
        return {"epochs": self.pretrain_epochs, "batch_size": 64, "lr": self.lr, "min_steps": 0}

    def arch_kwargs(self) -> dict:
        return {"width": self.width, "fc_width": self.fc_width}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BUDGETS = {
    "tiny": Budget("tiny", 30, 12, 16, 4, 16, 2, 1, 1, batch_size=16),
    "quick": Budget("quick", 300, 40, 16, 8, 64, 6, 10, 1),
    "standard": Budget("standard", None, 100, 32, 32, 256, 30, 30, 3, batch_size=64),
}
# Colour photos need more pixels and channels than digits to learn features worth moving.
OVERRIDES = {("quick", "cifar10"): {"size": 24, "width": 12, "fc_width": 96,
                                    "pretrain_epochs": 10},
             # digits has ~120 training images per class: all of them, more epochs
             ("quick", "digits"): {"source_per_class": None, "pretrain_epochs": 15}}


def get_budget(name: str, pair: str) -> Budget:
    b = BUDGETS[name]
    extra = OVERRIDES.get((name, pair))
    return dataclasses.replace(b, **extra) if extra else b
