"""The study's design: halves A and B, their task strings, and the sweep specs to run.

A random split is drawn once per split seed (the paper's random halves: one unlucky split,
such as CIFAR-10's seed 0 that is nearly animals vs vehicles, must not stand for
"random"); a dissimilar or explicit split is one ``Split``. Per split, three sweep specs
write to one database (trials are keyed by their config hash, so the specs share
pretrained sources and never clash):

* ``transfer``: sources baseA and baseB (pretrained per seed) x protocols reinit, reinit+
  x n = 1..L-1 -> AnB, AnB+, BnB, BnB+;
* ``random``: a randomly initialised source (pretraining with 0 epochs, per seed: exactly
  baseA before training) x reinit x n -> the random-features control;
* ``baseB``: ``scratch`` on B with the same budget -> the reference line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab.data import TaskSpec, load_dataset, split_halves
from transferlab.data.spec import normalize_classes
from transferlab.data.tasks import resolve_classes
from transferlab.errors import UserError, bad_value
from transferlab.studies.yosinski.budgets import MIN_SIZE, Budget, get_budget

SPLITS = ("random", "dissimilar")
ARCH = "convnet"


@dataclass
class Split:
    """One pair of halves: classes A and B and their task strings."""

    split_seed: int | None       # None for a dissimilar or explicit split
    ids_a: list[int]             # dataset class indices of half A / B
    ids_b: list[int]
    classes_a: list[str]
    classes_b: list[str]
    task_a: str                  # canonical task strings
    task_b: str

    def to_dict(self) -> dict:
        return {"split_seed": self.split_seed, "classes_a": self.classes_a,
                "classes_b": self.classes_b, "task_a": self.task_a, "task_b": self.task_b}


@dataclass
class Design:
    """Everything that defines one study run (stored in curves.json as settings)."""

    dataset: str                 # as given: a name or a path
    name: str                    # the dataset's short name
    split: str
    splits: list[Split]          # one per split seed (random), else one
    budget: Budget
    seeds: list[int]
    depths: list[int]
    block_names: list[str]
    data_dir: str | None = None
    notes: list[str] = field(default_factory=list)  # budget adjustments made for this data

    @property
    def split_seeds(self) -> list[int | None]:
        return [s.split_seed for s in self.splits]

    def settings(self) -> dict:
        return {"dataset": self.dataset, "dataset_name": self.name, "split": self.split,
                "split_seeds": self.split_seeds, "splits": [s.to_dict() for s in self.splits],
                "seeds": len(self.seeds), "seed_list": self.seeds, "depths": self.depths,
                "budget": self.budget.name, "budget_settings": self.budget.to_dict(),
                "arch": ARCH, "arch_kwargs": self.budget.arch_kwargs(),
                "train": self.budget.train(), "data_dir": self.data_dir,
                "budget_notes": self.notes}


def short_name(dataset: str) -> str:
    """A folder-safe short name: "cifar10", or a path's stem."""
    stem = Path(dataset).name
    for suffix in (".zip", ".npz"):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "dataset"


def _explicit(tokens, names: tuple[str, ...], param: str) -> list[int]:
    try:
        ids = resolve_classes(normalize_classes(tokens), names)
    except UserError as exc:
        raise UserError(f"{param}: {exc}") from None
    if len(ids) < 2:
        raise bad_value(param, tokens, "at least 2 classes", "a half needs 2+ classes to "
                        "train a classifier")
    return ids


def _halves(ds, split: str, split_seed: int, classes_a, classes_b) -> tuple[list[int],
                                                                              list[int]]:
    if (classes_a is None) != (classes_b is None):
        raise UserError("--classes-a and --classes-b must be given together (or neither, to "
                        "split the classes automatically); add the missing one")
    if classes_a is not None:
        a = _explicit(classes_a, ds.classes, "--classes-a")
        b = _explicit(classes_b, ds.classes, "--classes-b")
        both = sorted(ds.classes[i] for i in set(a) & set(b))
        if both:
            raise bad_value("--classes-b", classes_b, "classes not in --classes-a",
                            f"remove {both} from one half")
        return a, b
    try:
        a, b = split_halves(ds, split, split_seed)
    except UserError:
        raise bad_value("--split", split, f"random for {ds.name!r} (only CIFAR-10's classes "
                        "have predefined dissimilar halves: A = animals, B = vehicles)",
                        "pass --classes-a and --classes-b to choose dissimilar halves "
                        "yourself, or use --split random") from None
    if min(len(a), len(b)) < 2:
        raise bad_value("--dataset", ds.name, "a dataset with at least 4 classes",
                        "halves need 2+ classes each")
    return list(a), list(b)


def _sampling(ds, ids: list[int], budget: Budget, notes: list[str]) -> dict:
    """per_class / val_per_class for these classes: the budget's, where the data allows."""
    counts = np.bincount(ds.y_train, minlength=len(ds.classes))[ids]
    smallest = int(counts.min())
    out: dict = {}
    val = budget.val_per_class
    if val is not None and val * 5 <= smallest:  # never hold out more than 20% of a class
        out["val_per_class"] = val
        n_val = val
    else:
        n_val = min(max(int(np.floor(0.1 * smallest + 0.5)), 1), smallest - 1)
        if val is not None:
            notes.append(f"val_per_class {val} > 20% of the smallest class ({smallest}); "
                         "used the default 10% validation split")
    if budget.per_class is not None:
        if budget.per_class <= smallest - n_val:
            out["per_class"] = budget.per_class
        else:
            notes.append(f"per_class {budget.per_class} > the {smallest - n_val} training "
                         "examples of the smallest class; used all of them")
    return out


def _split_seeds(split_seeds, split: str, explicit: bool, budget: Budget) -> list[int | None]:
    """The split seeds to run: the given ones (random split only) or the budget's count."""
    if split != "random" or explicit:
        if split_seeds is not None:
            why = "--classes-a/--classes-b" if explicit else f"--split {split}"
            raise bad_value("--split-seeds", split_seeds, "only with --split random (the "
                            f"halves of {why} are fixed)", "drop --split-seeds")
        return [None]
    if split_seeds is None:
        return list(range(budget.split_seeds))
    if isinstance(split_seeds, bool) or not isinstance(split_seeds, (list, tuple)):
        raise bad_value("--split-seeds", split_seeds, "a list of distinct integers >= 0, "
                        "e.g. 0,1,2")
    out = list(split_seeds)
    if (not out or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in out)
            or len(set(out)) != len(out)):
        raise bad_value("--split-seeds", split_seeds, "a list of distinct integers >= 0, "
                        "e.g. 0,1,2")
    return out


def design(dataset: str, split: str = "random", classes_a=None, classes_b=None,
           split_seeds: list[int] | None = None, seeds: int | list[int] = 3,
           budget: str | Budget = "quick", depths: list[int] | None = None,
           data_dir: str | None = None) -> Design:
    """Check the inputs and fix the study's halves, tasks and depths (loads the dataset).

    ``split_seeds``: the random split's seeds (default: the budget's ``split_seeds`` count,
    0..k-1); must be None for a dissimilar or explicit split.
    """
    from transferlab.models import build_model

    if split not in SPLITS:
        raise bad_value("--split", split, " or ".join(SPLITS))
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
        raise bad_value("--seeds", seeds, "a count >= 1 or a list of seeds")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise bad_value("--seeds", seeds, "a count >= 1 or distinct seeds >= 0")
    if ":" in str(dataset):
        raise bad_value("--dataset", dataset, "a dataset name or a path without ':'")
    get_budget(budget)  # a bad name fails before any data is read
    explicit = classes_a is not None or classes_b is not None
    seeds_of_split = _split_seeds(split_seeds, split, explicit,
                                  get_budget(budget) if isinstance(budget, str) else budget)
    ds = load_dataset(str(dataset), data_dir)
    budget = get_budget(budget, ds.name)
    h, w, c = ds.image_shape
    size = budget.size or max(h, w, MIN_SIZE)
    notes: list[str] = []
    splits = []
    for split_seed in seeds_of_split:
        ids_a, ids_b = _halves(ds, split, split_seed or 0, classes_a, classes_b)
        tasks = []
        for half, ids in (("A", ids_a), ("B", ids_b)):
            opts = dict(_sampling(ds, ids, budget, notes), size=size)
            if not explicit:
                opts.update(half=half, split=split, split_seed=split_seed or 0)
            else:
                opts["classes"] = ids
            tasks.append(str(TaskSpec(str(dataset), **opts)))
        splits.append(Split(split_seed, ids_a, ids_b, [ds.classes[i] for i in ids_a],
                            [ds.classes[i] for i in ids_b], tasks[0], tasks[1]))
    model = build_model(ARCH, num_classes=len(splits[0].ids_b), in_channels=c,
                        image_size=size, **budget.arch_kwargs())
    n_blocks = len(model.block_names)
    allowed = list(range(1, n_blocks))
    depths = allowed if depths is None else sorted({int(d) for d in depths})
    bad = [d for d in depths if d not in allowed]
    if bad or not depths:
        raise bad_value("--depths", bad or depths, f"values in 1..{n_blocks - 1} (n blocks "
                        f"transferred of {n_blocks})")
    return Design(str(dataset), ds.name, split, splits, budget, seed_list, depths,
                  list(model.block_names), data_dir, list(dict.fromkeys(notes)))


def sweep_specs(d: Design, split: Split | None = None) -> list[dict]:
    """The sweep specs (dicts in the sweep engine's format) of the study: three per split
    (``transfer``, ``random``, ``baseB``), for every split or only ``split``."""
    if split is None:
        return [spec for s in d.splits for spec in sweep_specs(d, s)]
    train = d.budget.train()

    def source(task: str, epochs: int | None = None) -> dict:
        pre = {"task": task, "arch": ARCH, "arch_kwargs": d.budget.arch_kwargs(),
               "train": dict(train), "seed": 0}
        return {"pretrain": pre, "per_seed": True,
                **({"epochs": epochs} if epochs is not None else {})}

    prefix = f"yosinski-{short_name(d.dataset)}-{d.split}"
    if split.split_seed is not None:
        prefix += f"{split.split_seed}"
    common = {"target": split.task_b, "train": dict(train), "data_dir": d.data_dir}
    return [
        {"name": f"{prefix}-transfer", **common,
         "sources": {"baseA": source(split.task_a), "baseB": source(split.task_b)},
         "axes": {"protocol": ["reinit", "reinit+"], "depth": d.depths, "seed": d.seeds}},
        {"name": f"{prefix}-random", **common,
         "sources": {"random": source(split.task_a, epochs=0)},
         "axes": {"protocol": ["reinit"], "depth": d.depths, "seed": d.seeds}},
        {"name": f"{prefix}-baseB", **common,
         "sources": {"baseB": source(split.task_b)},
         "axes": {"protocol": ["scratch"], "seed": d.seeds}},
    ]
