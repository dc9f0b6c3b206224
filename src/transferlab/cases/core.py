"""A *case*: one decision to be scored — a source, a target task at k labelled examples per
class, and the candidate protocols a decision rule may pick among.

Cases are split into ``dev`` (rules may be fitted or tuned on them) and ``heldout`` (only
scored). The split is part of each case's definition, fixed in the module that declares it
before any result is seen, and never derived from results.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from transferlab.errors import bad_value

SPLITS = ("dev", "heldout")
TIERS = ("quick", "standard")
PRETRAINED = ("efficientnet_lite0", "minilm")


def hashed_split(name: str) -> str:
    """The split of a case by its name alone: 'dev' when the first byte of sha256(name) is
    even, else 'heldout'. A rule fixed before any result exists (it reads nothing but the
    name), roughly half and half, and not steerable by looking at accuracies."""
    return "dev" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "heldout"

# The constant rules' picks (bench_decisions) and what every case measures at least.
# "freeze:half" is resolved per source as freeze:floor(L/2).
CONSTANT_RULES = {
    "always linear-probe": "linear-probe",
    "always finetune lr_mult 0.1": "finetune (lr_mult 0.1)",
    "always finetune lr_mult 1": "finetune (lr_mult 1)",
    "always scratch": "scratch",
    "always freeze at half depth": "freeze:half",
    "always freeze:0": "freeze:0",
}
DEFAULT_CANDIDATES = tuple(dict.fromkeys(CONSTANT_RULES.values()))


@dataclass(frozen=True)
class CaseConfig:
    """One case: where it comes from, what it asks, and which split it belongs to."""

    name: str = field(metadata={"help": "unique case name, e.g. 'digits04-59-k10'"})
    source_task: str | None = field(metadata={
        "help": "task string the source is pretrained on (e.g. 'digits:classes=0-4'); None "
                "with `pretrained`"})
    target: str = field(metadata={
        "help": "target task string WITHOUT per_class (the case adds per_class=k)"})
    k: int = field(metadata={"help": "labelled examples per class of the target (>= 4: a "
                                     "validation split is needed to choose)"})
    split: str = field(metadata={"help": "'dev' (rules may be tuned on it) or 'heldout' "
                                         "(scored only); fixed when the case is declared"})
    arch: str = field(default="mlp", metadata={"help": "source architecture (build_model)"})
    arch_kwargs: tuple = field(default=(), metadata={
        "help": "source architecture keyword arguments as ((key, value), ...) pairs"})
    pretrain_epochs: int = field(default=20, metadata={"help": "source pretraining epochs"})
    candidates: tuple[str, ...] = field(default=DEFAULT_CANDIDATES, metadata={
        "help": "candidate labels measured for the oracle: a protocol, 'finetune (lr_mult "
                "x)', or 'freeze:half'"})
    pretrained: str | None = field(default=None, metadata={
        "help": "a packaged pretrained source instead of pretraining one: "
                + ", ".join(PRETRAINED)})
    image_size: int | None = field(default=None, metadata={
        "help": "image side the pretrained source is built for (None: not an image model)"})
    tier: str = field(default="quick", metadata={
        "help": "'quick' (affordable on a 2-core CPU) or 'standard' (for a GPU)"})
    family: str = field(default="", metadata={
        "help": "the (source, target) pair this case belongs to, e.g. 'effnet-cifar10'"})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise bad_value("name", self.name, "a non-empty string")
        if self.split not in SPLITS:
            raise bad_value("split", self.split, " or ".join(SPLITS))
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 4:
            raise bad_value("k", self.k, "an integer >= 4 (a validation split to choose on)")
        if (self.source_task is None) == (self.pretrained is None):
            raise bad_value("source_task", self.source_task, "a task string, or None with "
                            "pretrained= (exactly one of the two)")
        if self.pretrained is not None and self.pretrained not in PRETRAINED:
            raise bad_value("pretrained", self.pretrained, ", ".join(PRETRAINED))
        if self.tier not in TIERS:
            raise bad_value("tier", self.tier, " or ".join(TIERS))
        if "per_class" in self.target:
            raise bad_value("target", self.target, "a task string without per_class",
                            "give the size as k")
        if not self.candidates:
            raise bad_value("candidates", self.candidates, "at least one candidate label")
        if isinstance(self.pretrain_epochs, bool) or not isinstance(self.pretrain_epochs, int) \
                or self.pretrain_epochs < 0:
            raise bad_value("pretrain_epochs", self.pretrain_epochs, "an integer >= 0")

    @property
    def target_task(self) -> str:
        return f"{self.target}:per_class={self.k}"

    def protocol_of(self, label: str, num_blocks: int) -> tuple[str, float | None]:
        """(protocol string, lr_mult or None) of a candidate label for a source of
        ``num_blocks`` blocks."""
        if label.startswith("finetune (lr_mult "):
            return "finetune", float(label[len("finetune (lr_mult "):-1])
        if label == "freeze:half":
            return f"freeze:{num_blocks // 2}", None
        return label, None
