"""The study's design: halves A and B, their task strings, and the sweep specs to run.

Three sweep specs write to one database (trials are keyed by their config hash, so the
specs share pretrained sources and never clash):

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
from transferlab.studies.budgets import MIN_SIZE, Budget, get_budget

SPLITS = ("random", "dissimilar")
ARCH = "convnet"


@dataclass
class Design:
    """Everything that defines one study run (stored in curves.json as settings)."""

    dataset: str                 # as given: a name or a path
    name: str                    # the dataset's short name
    split: str
    split_seed: int
    ids_a: list[int]             # dataset class indices of half A / B
    ids_b: list[int]
    classes_a: list[str]
    classes_b: list[str]
    task_a: str                  # canonical task strings
    task_b: str
    budget: Budget
    seeds: list[int]
    depths: list[int]
    block_names: list[str]
    data_dir: str | None = None
    notes: list[str] = field(default_factory=list)  # budget adjustments made for this data

    def settings(self) -> dict:
        return {"dataset": self.dataset, "dataset_name": self.name, "split": self.split,
                "split_seed": self.split_seed, "task_a": self.task_a, "task_b": self.task_b,
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


def design(dataset: str, split: str = "random", classes_a=None, classes_b=None,
           split_seed: int = 0, seeds: int | list[int] = 3, budget: str | Budget = "quick",
           depths: list[int] | None = None, data_dir: str | None = None) -> Design:
    """Check the inputs and fix the study's halves, tasks and depths (loads the dataset)."""
    from transferlab.models import build_model

    if split not in SPLITS:
        raise bad_value("--split", split, " or ".join(SPLITS))
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
        raise bad_value("--seeds", seeds, "a count >= 1 or a list of seeds")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise bad_value("--seeds", seeds, "a count >= 1 or distinct seeds >= 0")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise bad_value("--split-seed", split_seed, "an integer >= 0")
    if ":" in str(dataset):
        raise bad_value("--dataset", dataset, "a dataset name or a path without ':'")
    get_budget(budget)  # a bad name fails before any data is read
    ds = load_dataset(str(dataset), data_dir)
    budget = get_budget(budget, ds.name)
    ids_a, ids_b = _halves(ds, split, split_seed, classes_a, classes_b)
    h, w, c = ds.image_shape
    size = budget.size or max(h, w, MIN_SIZE)
    notes: list[str] = []
    tasks = []
    for half, ids in (("A", ids_a), ("B", ids_b)):
        opts = dict(_sampling(ds, ids, budget, notes), size=size)
        if classes_a is None:
            opts.update(half=half, split=split, split_seed=split_seed)
        else:
            opts["classes"] = ids
        tasks.append(str(TaskSpec(str(dataset), **opts)))
    model = build_model(ARCH, num_classes=len(ids_b), in_channels=c, image_size=size,
                        **budget.arch_kwargs())
    n_blocks = len(model.block_names)
    allowed = list(range(1, n_blocks))
    depths = allowed if depths is None else sorted({int(d) for d in depths})
    bad = [d for d in depths if d not in allowed]
    if bad or not depths:
        raise bad_value("--depths", bad or depths, f"values in 1..{n_blocks - 1} (n blocks "
                        f"transferred of {n_blocks})")
    return Design(str(dataset), ds.name, split, split_seed, ids_a, ids_b,
                  [ds.classes[i] for i in ids_a], [ds.classes[i] for i in ids_b], tasks[0],
                  tasks[1], budget, seed_list, depths, list(model.block_names), data_dir,
                  list(dict.fromkeys(notes)))


def sweep_specs(d: Design) -> list[dict]:
    """The three sweep specs (dicts in the sweep engine's format) of the study."""
    train = d.budget.train()

    def source(task: str, epochs: int | None = None) -> dict:
        pre = {"task": task, "arch": ARCH, "arch_kwargs": d.budget.arch_kwargs(),
               "train": dict(train), "seed": 0}
        return {"pretrain": pre, "per_seed": True,
                **({"epochs": epochs} if epochs is not None else {})}

    prefix = f"yosinski-{short_name(d.dataset)}-{d.split}"
    common = {"target": d.task_b, "train": dict(train), "data_dir": d.data_dir}
    return [
        {"name": f"{prefix}-transfer", **common,
         "sources": {"baseA": source(d.task_a), "baseB": source(d.task_b)},
         "axes": {"protocol": ["reinit", "reinit+"], "depth": d.depths, "seed": d.seeds}},
        {"name": f"{prefix}-random", **common,
         "sources": {"random": source(d.task_a, epochs=0)},
         "axes": {"protocol": ["reinit"], "depth": d.depths, "seed": d.seeds}},
        {"name": f"{prefix}-baseB", **common,
         "sources": {"baseB": source(d.task_b)},
         "axes": {"protocol": ["scratch"], "seed": d.seeds}},
    ]
