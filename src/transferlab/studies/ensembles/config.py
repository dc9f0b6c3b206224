"""The ensembles study's settings: one field per ``transferlab study ensembles`` flag."""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import bad_value
from transferlab.studies.ensembles.budgets import BUDGETS, PAIRS


@dataclass
class EnsemblesConfig:
    pair: str = field(default="digits", metadata={
        "help": "source -> target pair: digits (0-4 -> 5-9, offline), mnist-kmnist, "
                "cifar10 (animals -> vehicles)", "choices": tuple(PAIRS)})
    members: int = field(default=5, metadata={"help": "ensemble size M"})
    seeds: int = field(default=3, metadata={
        "help": "ensemble replicates (trial seeds 0..N-1: head initialisation and batch "
                "order); each is one unit of the paired tests"})
    budget: str = field(default="quick", metadata={
        "help": "quick (CPU: minutes) or standard (GPU)", "choices": ("quick", "standard")})
    workers: int | None = field(default=None, metadata={
        "help": "parallel trials (default: one per core)"})
    out: str | None = field(default=None, metadata={
        "help": "output folder (default runs/ensembles-<pair>); a rerun resumes"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the datasets (unset: $TRANSFERLAB_DATA)"})

    def __post_init__(self):
        if self.pair not in PAIRS:
            raise bad_value("--pair", self.pair, ", ".join(PAIRS))
        if self.budget not in BUDGETS:
            raise bad_value("--budget", self.budget, ", ".join(b for b in BUDGETS
                                                                if b != "tiny"))
        if not isinstance(self.members, int) or self.members < 2:
            raise bad_value("--members", self.members, "an integer >= 2 (shift needs a "
                            "reference and a member to shift)")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise bad_value("--seeds", self.seeds, "an integer >= 1")
