"""The few-shot study's settings: one field per ``transferlab study fewshot`` flag.

Cheap checks live here (lists, counts, choices); the checks that need the data (shots a
class can give, the target's classes, image sizes) live in ``design.design``. Both run
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import bad_value

BACKENDS = ("local", "ray")
DEFAULT_PROTOCOLS = ("linear-probe", "head-only", "bn-only", "conv-only", "finetune",
                     "bn-adapt", "bn-only-frozen-stats", "conv-only-frozen-stats",
                     "finetune-frozen-stats")


def int_list(text) -> list[int]:
    """"1,5,10" -> [1, 5, 10]."""
    if isinstance(text, (list, tuple)):
        return [int(t) for t in text]
    try:
        return [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise bad_value("list", text, "a comma list of integers such as 1,5,10") from None


def str_list(text) -> list[str]:
    """"bn-only,finetune" -> ["bn-only", "finetune"]."""
    if isinstance(text, (list, tuple)):
        return [str(t).strip() for t in text]
    return [t.strip() for t in str(text).split(",") if t.strip()]


@dataclass
class FewshotConfig:
    """What to run. ``shots`` / ``protocols`` may be lists in Python (comma lists on the CLI)."""

    pretrain: str | None = field(default="digits", metadata={
        "help": "dataset to pretrain the built-in convnet on first (digits, mnist, ...); with "
                "the target's own dataset (the default) the classes are halved: the first half "
                "pretrains, the second half is the target (digits: 0-4 -> 5-9)"})
    source: str | None = field(default=None, metadata={
        "help": "a checkpoint (.safetensors) to start from instead of --pretrain, or "
                "'efficientnet_lite0' for the ImageNet-pretrained EfficientNet-Lite0"})
    target: str | None = field(default=None, metadata={
        "help": "target dataset (all its classes are the N ways unless --classes narrows "
                "them); default: the pretraining dataset's other half"})
    classes: str | None = field(default=None, metadata={
        "help": "target classes: indices, ranges or names, e.g. 0-4 or cat,dog"})
    shots: list[int] | None = field(default=None, metadata={
        "help": "comma list of k, labelled examples per class (all of them train: the study "
                "selects nothing on validation); default: the budget's (quick 1,5,10)",
        "type": int_list})
    episodes: int | None = field(default=None, metadata={
        "help": "support sets per k (every protocol sees the same ones: paired); default: "
                "the budget's (quick 10)"})
    protocols: list[str] | None = field(default=None, metadata={
        "help": "comma list of protocols; default: " + ",".join(DEFAULT_PROTOCOLS),
        "type": str_list})
    seeds: int = field(default=1, metadata={
        "help": "training seeds per episode (0..N-1); each (seed, episode) is one unit of the "
                "paired tests"})
    budget: str = field(default="quick", metadata={
        "help": "quick (CPU: minutes), standard (GPU) or gpu (quick's k = 1,5,10 x 10 "
                "episodes, for a pretrained --source such as efficientnet_lite0 on a GPU)"})
    size: int | None = field(default=None, metadata={
        "help": "image side in pixels for pretraining and target (default: the dataset's, at "
                "least 16; with --source: the checkpoint's)"})
    weights: bool = field(default=True, metadata={
        "help": "keep every episode's weights and analyse what fine-tuning changed "
                "(--no-weights skips it and keeps no weights)"})
    backend: str = field(default="local", metadata={
        "help": "where trials run", "choices": BACKENDS})
    workers: int | None = field(default=None, metadata={
        "help": "parallel trials (default: one per core on CPU, one on a GPU)"})
    out: str | None = field(default=None, metadata={
        "help": "output folder (default runs/fewshot-<source>-<target>); a rerun resumes"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the datasets (unset: $TRANSFERLAB_DATA)"})

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise bad_value("--backend", self.backend, " or ".join(BACKENDS))
        if self.shots is not None:
            self.shots = int_list(self.shots)
            if not self.shots or any(k < 1 for k in self.shots) or \
                    len(set(self.shots)) != len(self.shots):
                raise bad_value("--shots", ",".join(map(str, self.shots)) or "(empty)",
                                "distinct integers >= 1, e.g. 1,5,10")
            self.shots = sorted(self.shots)
        if self.episodes is not None and (isinstance(self.episodes, bool)
                                          or not isinstance(self.episodes, int)
                                          or self.episodes < 1):
            raise bad_value("--episodes", self.episodes, "an integer >= 1",
                            "every cell needs at least one support set; 5+ give a CI")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise bad_value("--seeds", self.seeds, "an integer >= 1")
        if self.protocols is not None:
            self.protocols = str_list(self.protocols)
            if not self.protocols or len(set(self.protocols)) != len(self.protocols):
                raise bad_value("--protocols", ",".join(self.protocols) or "(empty)",
                                "distinct registered protocol names",
                                "see `transferlab transfer --help`")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 8):
            raise bad_value("--size", self.size, "an integer >= 8")
        if self.source is not None and self.pretrain not in (None, "digits"):
            raise bad_value("--source", self.source, "either --source or --pretrain",
                            "drop --pretrain (the source is already trained)")
