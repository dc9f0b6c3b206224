"""The Yosinski study's settings: one field per ``transferlab study yosinski`` flag.

Cheap checks live here (choices); the checks that need the data (classes, depths, budget
fit) live in ``conditions.design``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import bad_value
from transferlab.studies.yosinski.conditions import SPLITS

BACKENDS = ("local", "ray")


def int_list(text: str) -> list[int]:
    """"0,1,2" -> [0, 1, 2] (for comma-list flags)."""
    try:
        return [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise bad_value("list", text, "a comma list of integers such as 0,1,2") from None


@dataclass
class YosinskiConfig:
    """What to run. ``seeds`` may also be a list in Python (the CLI gives a count)."""

    dataset: str = field(default="digits", metadata={
        "help": "digits, mnist, cifar10, or an image folder / .zip / .npz path"})
    split: str = field(default="random", metadata={
        "help": "how classes are halved: random (one split per --split-seeds), or dissimilar "
                "(CIFAR-10: 6 animals vs 4 vehicles; for other datasets give "
                "--classes-a/--classes-b)", "choices": SPLITS})
    classes_a: str | None = field(default=None, metadata={
        "help": "explicit half A: indices, ranges or names, e.g. 0-4 or cat,dog"})
    classes_b: str | None = field(default=None, metadata={
        "help": "explicit half B (with --classes-a)"})
    split_seeds: list[int] | None = field(default=None, metadata={
        "help": "comma list of seeds of the random split; curves average over them (default: "
                "the budget's: quick 0,1; standard and full 0,1,2)", "type": int_list})
    seeds: int = field(default=3, metadata={
        "help": "number of seeds (0..N-1) per split; each (split seed, seed) is one unit of "
                "the paired tests"})
    budget: str = field(default="quick", metadata={
        "help": "quick (CPU: minutes), standard or full (GPU)"})
    depths: list[int] | None = field(default=None, metadata={
        "help": "comma list of n to run (default 1..L-1); fewer give a partial study",
        "type": int_list})
    backend: str = field(default="local", metadata={
        "help": "where trials run", "choices": BACKENDS})
    workers: int | None = field(default=None, metadata={
        "help": "parallel trials (default: one per core on CPU, one on a GPU)"})
    address: str | None = field(default=None, metadata={
        "help": "Ray cluster address (--backend ray)"})
    out: str | None = field(default=None, metadata={
        "help": "output folder (default runs/yosinski-<dataset>-<split>)"})
    compare: str | None = field(default=None, metadata={
        "help": "curves.json of the other split, for the dissimilar-vs-random finding "
                "(default: the sibling runs/yosinski-<dataset>-<other split> if any)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the datasets (unset: $TRANSFERLAB_DATA)"})

    def __post_init__(self):
        if self.split not in SPLITS:
            raise bad_value("--split", self.split, " or ".join(SPLITS))
        if self.backend not in BACKENDS:
            raise bad_value("--backend", self.backend, " or ".join(BACKENDS))
