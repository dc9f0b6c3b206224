"""Training budgets of the defrost study: data sizes, grid, networks and training lengths.

``quick`` is for a 2-core CPU (synthetic: 5 seeds x 3 target sizes x 3 correlation levels x
(L + 1 freeze depths + scratch) small-MLP trials; images: 3 sizes of MNIST -> KMNIST with a
small convnet), ``standard`` and ``full`` are for a GPU, ``tiny`` is for tests. Every budget
spans the regime where the paper's n* moves: target sizes from 10 examples per class (N = 20
on the binary synthetic task) up to the large-N regime, and correlations up to 0.99 (the
committed ``benchmarks/results/defrost_synthetic_both_quick.json``, by its test argmax:
n* = 4 at N = 20 and 1 at N >= 100 for correlation 0.99, 0 for 0.5; at correlations <= 0.9
and N >= 50 n* = 0 everywhere, the ``eta`` / ``q`` runs).

Synthetic validation: ``val_per_class`` examples per class drawn *besides* the N training
examples (from the same target distribution, never from the test draw); n* is chosen on it.

Target trials train for ``steps`` optimiser steps (``epochs`` = steps / batches per epoch,
clipped to [``min_epochs``, ``max_epochs``]), so a 50-example target is not under-trained
next to a 5,000-example one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from transferlab.errors import bad_value


@dataclass(frozen=True)
class Budget:
    """One budget (both data kinds; the ``synthetic_*`` fields only apply to --synthetic)."""

    name: str
    sizes: tuple[int, ...]          # target sizes N (labelled examples)
    correlations: tuple[float, ...]  # synthetic correlation levels
    source_n: int                   # synthetic source examples (images: source per_class)
    source_epochs: int
    steps: int                      # optimiser steps of each target trial (see module doc)
    min_epochs: int
    max_epochs: int
    batch_size: int = 32
    lr: float = 0.05
    mlp_depth: int = 5              # L for synthetic (the issue asks L >= 5)
    mlp_width: int = 64
    conv_width: int = 8             # convnet (images): conv1 channels, later stages 2x
    fc_width: int = 64
    image_size: int = 16
    generator: str = "dim=100:latent=20:hidden=100"  # synthetic keys shared by both roles
    similarity_samples: int = 1000  # target test inputs compared block by block
    val_per_class: int = 250        # synthetic: validation examples per class besides N

    def epochs_for(self, n_train: int) -> int:
        """Epochs that give about ``steps`` optimiser steps on ``n_train`` examples."""
        per_epoch = max(1, math.ceil(n_train / self.batch_size))
        return int(min(self.max_epochs, max(self.min_epochs, round(self.steps / per_epoch))))

    def train(self, n_train: int) -> dict:
        """The TrainConfig fields of a target trial on ``n_train`` examples."""
        # min_steps 0: epochs_for already plans the steps (this budget's own rule)
        return {"epochs": self.epochs_for(n_train), "batch_size": self.batch_size,
                "lr": self.lr, "min_steps": 0}

    def source_train(self) -> dict:
        return {"epochs": self.source_epochs, "batch_size": 64, "lr": self.lr, "min_steps": 0}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BUDGETS: dict[str, Budget] = {
    "tiny": Budget("tiny", sizes=(20, 60), correlations=(0.0, 1.0), source_n=400,
                   source_epochs=2, steps=20, min_epochs=1, max_epochs=5, mlp_width=16,
                   conv_width=4, fc_width=16, image_size=8,
                   generator="dim=20:latent=6:n_test=300", similarity_samples=100,
                   val_per_class=20),
    "quick": Budget("quick", sizes=(20, 100, 1000), correlations=(0.5, 0.9, 0.99),
                    source_n=10000, source_epochs=20, steps=600, min_epochs=10,
                    max_epochs=200),
    "standard": Budget("standard", sizes=(20, 50, 200, 1000, 5000),
                       correlations=(0.0, 0.5, 0.9, 0.99), source_n=20000, source_epochs=40,
                       steps=2000, min_epochs=10, max_epochs=400, batch_size=64,
                       mlp_width=128, conv_width=32, fc_width=256, image_size=28,
                       generator="dim=200:latent=40:hidden=200", similarity_samples=2000),
    "full": Budget("full", sizes=(20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
                   correlations=(0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99), source_n=50000,
                   source_epochs=60, steps=4000, min_epochs=10, max_epochs=800,
                   batch_size=64, mlp_width=256, conv_width=64, fc_width=512, image_size=28,
                   generator="dim=500:latent=100:hidden=500", similarity_samples=4000),
}
PUBLIC = ("quick", "standard", "full")  # what the CLI offers; "tiny" is for tests


def get_budget(name: str | Budget) -> Budget:
    if isinstance(name, Budget):
        return name
    if name not in BUDGETS:
        raise bad_value("--budget", name, ", ".join(PUBLIC), "quick runs on a CPU")
    return BUDGETS[name]
