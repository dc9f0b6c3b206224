"""From a spec to a plan: check what the spec means, then expand the grid into cells.

A *cell* is one trial before its source checkpoint exists (pretrained sources are built
later); its trial key is computed once the source's content hash is known.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferlab._memory import trial_limit
from transferlab.errors import UserError
from transferlab.sweep import foundation as fd
from transferlab.sweep.spec import (SweepSpec, parse_sources, parse_structure, raise_problems,
                                    read_spec)

FIXED_AXES = ("protocol", "depth", "source", "seed", "target")


@dataclass(frozen=True)
class SourcePlan:
    """A named source: ``checkpoint`` (absolute path) or a ``pretrain`` recipe."""

    name: str
    num_blocks: int
    checkpoint: str | None = None
    pretrain: dict | None = None  # task, arch, arch_kwargs, train (resolved), seed
    per_seed: bool = False

    def pretrain_config(self, trial_seed: int, data_dir: str | None) -> dict:
        """The resolved pretraining config for a trial with ``trial_seed``."""
        cfg = dict(self.pretrain or {})
        if self.per_seed:
            cfg["seed"] = cfg["seed"] + trial_seed
        cfg["data_dir"] = data_dir
        return cfg


@dataclass
class Cell:
    """One grid point: everything about a trial except its source's content hash."""

    labels: dict[str, Any]  # grid coordinates: source, protocol, depth, seed, other axes
    source: str
    protocol: str  # full name, e.g. "freeze:3"
    seed: int
    task: str
    train: dict[str, Any]


@dataclass
class Plan:
    spec: SweepSpec
    sources: dict[str, SourcePlan]
    cells: list[Cell] = field(default_factory=list)
    # Task.fingerprint per task string, built once per plan; a plan has one data_dir, so
    # this is the (task string, data_dir) cache the keys need.
    fingerprints: dict[str, str] = field(default_factory=dict)

    def fingerprint(self, task: str) -> str:
        """The data fingerprint of ``task`` under this plan's ``data_dir`` (built once)."""
        return _fingerprint(self.fingerprints, task, self.data_dir)

    @property
    def data_dir(self) -> str | None:
        """``data_dir`` with a relative path taken from the spec file's folder."""
        if self.spec.data_dir is None:
            return None
        path = Path(self.spec.data_dir).expanduser()
        if not path.is_absolute() and self.spec.base_dir:
            path = Path(self.spec.base_dir) / path
        return str(path.resolve())


def _fingerprint(cache: dict, task: str, data_dir: str | None) -> str:
    if task not in cache:
        cache[task] = fd.task_fingerprint(task, data_dir)
    return cache[task]


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_sources(raw: dict, base_dir: str | None, data_dir: str | None,
                   problems: list[str], fps: dict) -> dict[str, SourcePlan]:
    sources, probs = parse_sources(raw.get("sources", {}))
    problems += probs
    out = {}
    for name, s in sources.items():
        where = f"sources.{name}"
        try:
            if s.checkpoint is not None:
                path = Path(s.checkpoint).expanduser()
                if not path.is_absolute() and base_dir:
                    path = Path(base_dir) / path
                if not Path(fd.checkpoint_weights(str(path))).is_file():
                    problems.append(f"{where}.checkpoint: {str(path)!r} does not exist; check "
                                    "the path, or make it with `transferlab pretrain`")
                    continue
                out[name] = SourcePlan(name, fd.checkpoint_num_blocks(str(path)),
                                       checkpoint=str(path.resolve()))
            else:
                pt = s.pretrain
                task = fd.canonical_task(pt.task)
                train = fd.resolve_train(s.pretrain_train())
                n = fd.arch_num_blocks(task, pt.arch, pt.arch_kwargs, data_dir)
                # The pretraining data's fingerprint names the cached source with its
                # recipe: an edited source dataset is pretrained again.
                cfg = {"task": task, "arch": pt.arch, "arch_kwargs": dict(pt.arch_kwargs),
                       "train": train, "seed": pt.seed,
                       "task_fingerprint": _fingerprint(fps, task, data_dir)}
                out[name] = SourcePlan(name, n, pretrain=cfg, per_seed=s.per_seed)
        except UserError as exc:
            problems.append(f"{where}: {exc}")
    if isinstance(raw.get("sources", {}), dict) and not raw.get("sources"):
        problems.append("sources: empty; give at least one source, e.g. "
                        "{mine: {checkpoint: model.safetensors}}")
    return out


def _depth_problem(where: str, what: str, depth: int, base: str,
                   sources: dict[str, SourcePlan]) -> str | None:
    for s in sources.values():
        allowed, _ = fd.depth_range(base, s.num_blocks)
        if depth not in allowed:
            side = "beyond" if depth > allowed.stop - 1 else "below"
            return (f"{where}: {what} is {side} the model's {s.num_blocks} blocks "
                    f"(source {s.name!r}); allowed are {allowed.start}..{allowed.stop - 1}")
    return None


def plan_sweep(spec) -> Plan:
    """Validate ``spec`` (SweepSpec, dict or YAML path) and expand it into cells.

    Raises one ``UserError`` listing every problem, each with its path in the spec.
    """
    raw, display, base_dir = read_spec(spec)
    parsed, problems, failed = parse_structure(raw)
    data_dir = raw.get("data_dir") if isinstance(raw.get("data_dir"), str) else None
    if data_dir and base_dir and not Path(data_dir).expanduser().is_absolute():
        data_dir = str(Path(base_dir) / data_dir)

    train_raw = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    train_raw = {k: fd.coerce_train_value(k, v) for k, v in train_raw.items()}
    try:
        fd.resolve_train(train_raw)
    except UserError as exc:
        problems.append(f"train: {exc}")
        train_raw = None

    target = raw.get("target")
    if isinstance(target, str):
        try:
            target = fd.canonical_task(target)
        except UserError as exc:
            problems.append(f"target: {exc}")
            target = None
    else:
        target = None

    fps: dict = {}
    sources = _check_sources(raw, base_dir, data_dir, problems, fps)
    axes_raw = raw.get("axes") if isinstance(raw.get("axes"), dict) else {}
    train_names, task_names = fd.train_fields(), fd.task_fields()
    allowed = list(FIXED_AXES) + list(train_names) + list(task_names)
    axes: dict[str, list] = {}
    for name, value in axes_raw.items():
        where = f"axes.{name}"
        if name not in allowed:
            problems.append(f"{where}: unknown axis; allowed are {', '.join(allowed)}")
            continue
        if name == "depth" and value == "all":
            axes[name] = ["all"]
            continue
        if name == "seed" and isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                problems.append(f"{where}: {value} seeds; give a count >= 1 or a list of seeds")
                continue
            if value > trial_limit():  # before range(value) is listed
                problems.append(f"{where}: {value:,} seeds; allowed is at most "
                                f"{trial_limit():,} trials per plan (transferlab._memory); "
                                "give fewer seeds")
                continue
            value = list(range(value))
        values = _as_list(value)
        if not values:
            problems.append(f"{where}: empty list; give at least one value")
            continue
        axes[name] = values

    protocols = axes.get("protocol")
    if protocols is None and "axes" not in failed:
        problems.append("axes.protocol: missing; give the protocols to compare, e.g. "
                        "[linear-probe, freeze, finetune] (with a depth axis for freeze)")
    depth_axis = axes.get("depth")
    depth_takers: list[str] = []
    for i, p in enumerate(protocols or []):
        where = f"axes.protocol[{i}]"
        if not isinstance(p, str):
            problems.append(f"{where}: {p!r} is not a protocol name; write e.g. 'freeze:3'")
            continue
        base, n = fd.split_protocol(p)
        try:
            if fd.takes_depth(base) and n is None:
                if depth_axis is None:
                    problems.append(f"{where}: {p!r} needs a depth; write '{p}:3' or add a "
                                    "depth axis (e.g. depth: all)")
                    continue
                fd.check_protocol(f"{base}:1")
                depth_takers.append(base)
            else:
                fd.check_protocol(p)
                if n is not None:
                    msg = _depth_problem(where, repr(p), n, base, sources)
                    if msg:
                        problems.append(msg)
        except UserError as exc:
            problems.append(f"{where}: {exc}")
    if depth_axis is not None and protocols is not None and not depth_takers:
        problems.append("axes.depth: no protocol in axes.protocol takes a depth; add one such "
                        "as 'freeze' or 'reinit', or remove the depth axis")
    if depth_axis is not None and depth_axis != ["all"]:
        for i, d in enumerate(depth_axis):
            if not isinstance(d, int) or isinstance(d, bool):
                problems.append(f"axes.depth[{i}]: {d!r} is not an integer; give block counts "
                                "such as [1, 3, 5] or 'all'")
                continue
            for base in dict.fromkeys(depth_takers):
                msg = _depth_problem(f"axes.depth[{i}]", str(d), d, base, sources)
                if msg:
                    problems.append(msg)
                    break
    for i, s in enumerate(axes.get("source", [])):
        if s not in (raw.get("sources") or {}):
            problems.append(f"axes.source[{i}]: {s!r} is not a source; allowed are "
                            f"{sorted(raw.get('sources') or {})}")
    for i, s in enumerate(axes.get("seed", [])):
        if not isinstance(s, int) or isinstance(s, bool):
            problems.append(f"axes.seed[{i}]: {s!r} is not an integer seed")
    targets = [target] if target else []
    if "target" in axes:
        targets = []
        for i, t in enumerate(axes["target"]):
            try:
                targets.append(fd.canonical_task(str(t)))
            except UserError as exc:
                problems.append(f"axes.target[{i}]: {exc}")
    for name, values in axes.items():
        for i, v in enumerate(values):
            try:
                if name in train_names and train_raw is not None:
                    axes[name][i] = fd.coerce_train_value(name, v)
                    fd.resolve_train({**train_raw, name: axes[name][i]})
                elif name in task_names and name not in FIXED_AXES:
                    for t in targets:
                        fd.with_task_options(t, {name: v})
            except UserError as exc:
                problems.append(f"axes.{name}[{i}]: {exc}")
    raise_problems(display, problems)
    assert parsed is not None  # no problems means pydantic accepted it
    return Plan(parsed, sources, _expand(parsed, sources, axes, train_raw, targets), fps)


def _expand(spec: SweepSpec, sources: dict[str, SourcePlan], axes: dict[str, list],
            train_raw: dict, targets: list[str]) -> list[Cell]:
    """The grid in a fixed order: source, protocol, depth, target, other axes, seed."""
    train_names, task_names = fd.train_fields(), fd.task_fields()
    others = [a for a in axes if a not in FIXED_AXES]
    seeds = axes.get("seed", [0])
    # the grid's size before any cell is built (depth 'all' counts as the deepest source's)
    n_depths = max([sources[s].num_blocks for s in sources] or [1]) + 1
    size = len(axes.get("source", list(sources))) * len(axes["protocol"]) * max(
        len(axes.get("depth", [1])) if axes.get("depth") != ["all"] else n_depths, 1) \
        * max(len(targets), 1) * math.prod(len(axes[a]) for a in others) * len(seeds)
    if size > trial_limit():
        raise UserError(f"sweep {spec.name!r} is invalid: its grid plans up to {size:,} "
                        f"trials (axes {', '.join(f'{a}: {len(v)}' for a, v in axes.items())}): "
                        f"allowed is at most {trial_limit():,} trials per plan (the memory and "
                        "time bound of transferlab._memory); shrink the axes")
    cells, seen = [], set()
    for src in axes.get("source", list(sources)):
        for proto in axes["protocol"]:
            base, n = fd.split_protocol(proto)
            if fd.takes_depth(base) and n is None:
                depths = axes["depth"]
                if depths == ["all"]:
                    depths = list(fd.depth_range(base, sources[src].num_blocks)[1])
                variants = [(f"{base}:{d}", d) for d in depths]
            else:
                variants = [(proto, n)]
            for full, depth in variants:
                for tgt in targets:
                    for combo in itertools.product(*(axes[a] for a in others)):
                        point = dict(zip(others, combo))
                        opts = {k: v for k, v in point.items() if k in task_names}
                        task = fd.with_task_options(tgt, opts) if opts else tgt
                        train = fd.resolve_train(
                            {**train_raw, **{k: v for k, v in point.items() if k in train_names}},
                            protocol=full)
                        for seed in seeds:
                            labels = {"source": src, "protocol": base, "depth": depth,
                                      "seed": seed, **point}
                            if "target" in axes:
                                labels["target"] = tgt
                            ident = (src, full, seed, task, repr(sorted(train.items())))
                            if ident in seen:  # e.g. 'freeze:3' listed next to a depth axis
                                continue
                            seen.add(ident)
                            cells.append(Cell(labels, src, full, seed, task, train))
    return cells
