"""Training budgets of the Yosinski study: how long, on how much data, how wide a network.

``quick`` is for a laptop CPU (digits: 2 seeds x 2 split seeds, about a minute on an idle
2-core CPU; MNIST / CIFAR-10 halves with 3 seeds: about 15-25 minutes per split seed);
``standard`` and ``full`` are for a GPU. ``tiny`` exists for tests. A random split is
averaged over ``split_seeds`` random halvings (2 for ``quick``, 3 on a GPU, 1 for ``tiny``)
unless ``--split-seeds`` says otherwise. A few datasets get their own quick settings
(``OVERRIDES``) because a budget that is right for 8x8 digits is not right for 32x32 colour
photos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transferlab.errors import bad_value


@dataclass(frozen=True)
class Budget:
    """One budget. The same training settings serve pretraining and every transfer trial,
    as in the paper."""

    name: str
    epochs: int
    per_class: int | None      # training examples per class (None: all)
    val_per_class: int | None  # validation examples per class (None: 10% of the training set)
    size: int | None           # image side in pixels (None: native, at least MIN_SIZE)
    width: int                 # convnet channels of conv1 (later stages 2x)
    fc_width: int              # units of fc6 and fc7
    batch_size: int = 64
    lr: float = 0.05
    split_seeds: int = 3       # random splits averaged over (split seeds 0..k-1)

    def train(self) -> dict:
        """The TrainConfig fields this budget sets (the rest keep their defaults)."""
        # min_steps 0: the study's epochs as designed (its committed results used them)
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "min_steps": 0}

    def arch_kwargs(self) -> dict:
        return {"width": self.width, "fc_width": self.fc_width}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


MIN_SIZE = 16  # the convnet pools three times; 8x8 digits are upsampled to keep 2x2 at fc6

BUDGETS: dict[str, Budget] = {
    "tiny": Budget("tiny", epochs=1, per_class=20, val_per_class=5, size=8, width=4,
                   fc_width=16, split_seeds=1),
    "quick": Budget("quick", epochs=15, per_class=1000, val_per_class=50, size=16, width=8,
                    fc_width=64, split_seeds=2),
    "standard": Budget("standard", epochs=30, per_class=None, val_per_class=500, size=None,
                       width=32, fc_width=256, batch_size=128),
    "full": Budget("full", epochs=60, per_class=None, val_per_class=500, size=None, width=64,
                   fc_width=512, batch_size=128),
}
# Per-dataset adjustments (budget, dataset) -> fields; measured on a shared 2-core CPU.
OVERRIDES: dict[tuple[str, str], dict] = {
    # ~110 images per class: the quick budget's 15 epochs reach the test accuracy of 30 on
    # digits halves (96-99%, measured), so `make demo` keeps its time with 2 split seeds.
    # Colour photos need more pixels and channels than digits to learn features worth moving.
    ("quick", "cifar10"): {"epochs": 12, "size": 24, "width": 12, "fc_width": 96},
}
PUBLIC = ("quick", "standard", "full")  # what the CLI offers; "tiny" is for tests


def get_budget(name: str | Budget, dataset: str | None = None) -> Budget:
    """The budget ``name`` with ``dataset``'s adjustments applied."""
    if isinstance(name, Budget):
        return name
    if name not in BUDGETS:
        raise bad_value("--budget", name, ", ".join(PUBLIC), "quick runs on a CPU in minutes")
    budget = BUDGETS[name]
    extra = OVERRIDES.get((name, dataset or ""), {})
    return dataclasses.replace(budget, **extra) if extra else budget
