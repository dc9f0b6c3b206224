"""The guide study's settings: one field per ``transferlab study guide`` flag."""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import bad_value
from transferlab.studies.guide.cases import BUDGETS, CASE_SETS, PUBLIC

ROLES = ("all", "fit", "heldout")


@dataclass
class GuideConfig:
    cases: str = field(default="mnist", metadata={
        "help": "case set: mnist (MNIST/KMNIST/digits pairs; needs TRANSFERLAB_DATA), "
                "digits (offline, small) or smoke (one digits case, for tests)",
        "choices": tuple(CASE_SETS)})
    roles: str = field(default="all", metadata={
        "help": "which cases to run: all, fit (the four scenarios) or heldout",
        "choices": ROLES})
    budget: str = field(default="quick", metadata={
        "help": f"{', '.join(PUBLIC)}: quick = 16x16 inputs, a width-8 convnet, 10 epochs, "
                "'large' = 500 labelled per class"})
    seeds: int = field(default=2, metadata={"help": "training seeds per candidate"})
    workers: int | None = field(default=None, metadata={
        "help": "parallel trials (default: one per core)"})
    out: str | None = field(default=None, metadata={
        "help": "output folder (default runs/guide-<cases>)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the datasets (unset: $TRANSFERLAB_DATA)"})

    def __post_init__(self):
        if self.cases not in CASE_SETS:
            raise bad_value("--cases", self.cases, ", ".join(CASE_SETS))
        if self.roles not in ROLES:
            raise bad_value("--roles", self.roles, ", ".join(ROLES))
        if self.budget not in BUDGETS:
            raise bad_value("--budget", self.budget, ", ".join(PUBLIC))
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise bad_value("--seeds", self.seeds, "an integer >= 1")
