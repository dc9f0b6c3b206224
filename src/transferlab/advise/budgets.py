"""Budgets of ``transferlab advise``: how much evidence it gathers and how long ``--verify``
races its candidates.

``quick`` is for a CPU (an MNIST-sized task advised in seconds, verified in minutes);
``standard`` doubles the training of the race for a GPU; ``tiny`` exists for tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transferlab.errors import bad_value


@dataclass(frozen=True)
class AdviseBudget:
    """One budget. ``epochs`` is what a recommended SGD protocol trains for (the full
    budget of a candidate); the race's rungs train ``rungs`` fractions of it."""

    name: str
    epochs: int                  # full training of an SGD candidate (finetune, freeze:n, ...)
    evidence_per_class: int      # at most this many train (and val) examples per class
                                 # feed the evidence probes: cheap, whatever the task's size
    race_size: int               # candidates entering the race (top of the ranking)
    rungs: tuple[float, ...]     # fraction of ``epochs`` per rung; survivors halve
    lr: float = 0.05
    batch_size: int = 64
    min_steps: int = 100         # an SGD candidate trains at least this many steps

    def train(self, epochs: int | None = None) -> dict:
        """TrainConfig fields of a candidate trained for ``epochs`` (default: full).

        ``min_steps`` 0: the race plans its epochs itself (``epochs_for`` raised the full
        budget already; a rung is a fraction of it and must not be raised again)."""
        return {"epochs": int(epochs or self.epochs), "lr": self.lr,
                "batch_size": self.batch_size, "min_steps": 0}

    def rung_epochs(self, epochs: int | None = None) -> list[int]:
        """Epochs of each rung: ``rungs`` fractions of ``epochs`` (default the budget's)."""
        return [max(1, round(f * (epochs or self.epochs))) for f in self.rungs]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BUDGETS: dict[str, AdviseBudget] = {
    "tiny": AdviseBudget("tiny", epochs=2, evidence_per_class=40, race_size=3,
                         rungs=(0.5, 1.0), min_steps=4),
    "quick": AdviseBudget("quick", epochs=10, evidence_per_class=300, race_size=4,
                          rungs=(0.15, 1.0)),
    "standard": AdviseBudget("standard", epochs=20, evidence_per_class=1000, race_size=4,
                             rungs=(0.25, 0.5, 1.0)),
}
PUBLIC = ("quick", "standard")  # what the CLI offers; "tiny" is for tests


def epochs_for(n_train: int, epochs: int, min_steps: int, batch_size: int,
               cap: int = 200) -> int:
    """``epochs``, raised so that an SGD run takes at least ``min_steps`` optimiser steps.

    Ten epochs of 40 examples in batches of 64 are ten steps: fine-tuning then loses to a
    probe because it never trained, not because of the data (measured on digits k = 10).
    """
    from transferlab.train import TrainConfig

    raised = TrainConfig(epochs=epochs, min_steps=min_steps, batch_size=batch_size)
    return int(min(cap, raised.epochs_for(n_train)))  # the training loop's own rule


def get_budget(name: str | AdviseBudget) -> AdviseBudget:
    """The budget ``name``; a ``UserError`` naming the allowed ones otherwise."""
    if isinstance(name, AdviseBudget):
        return name
    if name not in BUDGETS:
        raise bad_value("--budget", name, ", ".join(PUBLIC),
                        "quick advises an MNIST-sized task in seconds on a CPU")
    return BUDGETS[name]
