"""The text study's settings: one field per ``transferlab study text`` flag."""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import bad_value
from transferlab.studies.yosinski.config import int_list

BUDGETS = ("quick", "standard")
BACKENDS = ("local", "ray")


@dataclass
class TextConfig:
    """What to run: the encoder, the text task, the shots, the protocols' budget."""

    source: str = field(default="minilm", metadata={
        "help": "the pretrained encoder: minilm (built in) or a text-model checkpoint"})
    task: str = field(default="banking77", metadata={
        "help": "the text task without per_class (banking77, or csv:path=FILE[:test=FILE])"})
    max_length: int = field(default=64, metadata={
        "help": "tokens per text (BANKING77 queries: 98 at most, mean 14)"})
    shots: list[int] | None = field(default=None, metadata={
        "help": "comma list of k (labelled examples per class); default 5,10,30",
        "type": int_list})
    full: bool = field(default=True, metadata={
        "help": "also run the full training set (slow on a CPU: --no-full skips it)"})
    episodes: int = field(default=2, metadata={
        "help": "support sets drawn per k (episodes 0..E-1; the units of the paired tests)"})
    depths: list[int] | None = field(default=None, metadata={
        "help": "comma list of n for freeze:n (default: the budget's: 3,5 for quick)",
        "type": int_list})
    budget: str = field(default="quick", metadata={
        "help": "quick (CPU: few epochs) or standard", "choices": BUDGETS})
    backend: str = field(default="local", metadata={"help": "where trials run",
                                                    "choices": BACKENDS})
    workers: int | None = field(default=1, metadata={
        "help": "parallel trials (default 1: a text model uses every core)"})
    out: str | None = field(default=None, metadata={
        "help": "output folder (default runs/text-<task>)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the datasets (unset: $TRANSFERLAB_DATA)"})

    def __post_init__(self):
        if self.budget not in BUDGETS:
            raise bad_value("--budget", self.budget, " or ".join(BUDGETS))
        if self.backend not in BACKENDS:
            raise bad_value("--backend", self.backend, " or ".join(BACKENDS))
        if isinstance(self.max_length, bool) or not isinstance(self.max_length, int) \
                or not 1 <= self.max_length <= 512:
            raise bad_value("--max-length", self.max_length, "an integer in 1..512")
        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise bad_value("--episodes", self.episodes, "an integer >= 1")
        if self.shots is not None and (not self.shots or any(k < 1 for k in self.shots)):
            raise bad_value("--shots", self.shots, "a comma list of integers >= 1")
        if "per_class" in self.task:
            raise bad_value("--task", self.task, "a task without per_class",
                            "the study sets per_class from --shots")
        if not self.full and self.shots == []:
            raise bad_value("--shots", self.shots, "at least one k, or --full")

    @property
    def ks(self) -> list[int]:
        return list(self.shots) if self.shots is not None else [5, 10, 30]
