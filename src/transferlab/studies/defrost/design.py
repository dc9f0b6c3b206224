"""The defrost study's design: source and target tasks per seed, cells, and the sweep specs.

A *unit* is a seed s: it fixes the synthetic generator (``gen_seed=s``: F, the teacher and
the target's perturbations) or the image target's example draw (task ``seed=s``), the
pretrained source network (pretraining seed 1000 + s) and every trial's initialisation, so all
depths, sizes and correlation levels of one seed are paired. A *cell* is (target size N,
correlation level). Per (seed, N) two sweep specs write into one database:

* ``freeze``: the source x ``freeze:n`` for every depth n (and ``reinit:n`` with --reinit) x
  the cell's target tasks (one per correlation level);
* ``scratch``: the same targets trained from random initialisation; at the largest N the
  weights are kept (``keep: [weights]``) for the block-by-block representation comparison.

Trials of one (seed, N) share the chained frozen-prefix cache, so a deep freeze costs little
more than a head. Training length: ``Budget.train(N)`` (a fixed number of steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from transferlab.data import TaskSpec
from transferlab.errors import bad_value
from transferlab.studies.defrost.budgets import Budget, get_budget
from transferlab.studies.defrost.config import DefrostConfig

# Keys the study sets itself on synthetic tasks (the generator may not override them).
_STUDY_KEYS = ("role", "eta", "q", "n", "gen_seed")
_TARGET_ONLY = ("rho",)
# The source of seed s is initialised with seed SOURCE_SEED + s, so that it never shares its
# initial weights with a trial of seed s (a scratch net starting from the source's own
# initialisation would inflate the representation similarity).
SOURCE_SEED = 1000


@dataclass
class Design:
    """Everything that defines one study run (stored in defrost.json as settings)."""

    kind: str                       # "synthetic" or "images"
    budget: Budget
    seeds: list[int]
    sizes: list[int]
    levels: list                    # correlation levels (synthetic) or [target label]
    knob: str | None
    depths: list[int]
    num_blocks: int
    block_names: list[str]
    arch: str
    arch_kwargs: dict
    source_tasks: dict[int, str]    # seed -> source task
    targets: dict[tuple, str]       # (seed, N, level) -> target task
    reinit: bool = False
    data_dir: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cells(self) -> list[tuple[int, object]]:
        return [(n, lv) for n in self.sizes for lv in self.levels]

    def cell_of_task(self) -> dict[str, tuple[int, int, object]]:
        """target task string -> (seed, N, level)."""
        return {t: key for key, t in self.targets.items()}

    def settings(self) -> dict:
        return {"kind": self.kind, "budget": self.budget.name,
                "budget_settings": self.budget.to_dict(), "seeds": len(self.seeds),
                "seed_list": self.seeds, "sizes": self.sizes, "levels": self.levels,
                "knob": self.knob, "depths": self.depths, "num_blocks": self.num_blocks,
                "block_names": self.block_names, "arch": self.arch,
                "arch_kwargs": self.arch_kwargs, "reinit": self.reinit,
                "source_tasks": {str(s): t for s, t in self.source_tasks.items()},
                "example_targets": [self.targets[(self.seeds[0], n, lv)]
                                    for n, lv in self.cells],
                "data_dir": self.data_dir, "notes": self.notes}


def _keys(text: str | None) -> dict[str, str]:
    """"hidden=64:noise=0.2" -> {"hidden": "64", "noise": "0.2"}."""
    out: dict[str, str] = {}
    for part in (text or "").split(":"):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise bad_value("--generator", text, "key=value pairs joined by ':'",
                            "e.g. --generator hidden=64:noise=0.2")
        out[k.strip()] = v.strip()
    return out


def _join(keys: dict) -> str:
    return ":".join(f"{k}={v}" for k, v in keys.items())


def _synthetic(cfg: DefrostConfig, budget: Budget, seeds: list[int], sizes: list[int]):
    levels = list(cfg.correlations) if cfg.correlations is not None else list(
        budget.correlations)
    gen = _keys(budget.generator)
    user = _keys(cfg.generator)
    clash = [k for k in user if k in _STUDY_KEYS]
    if clash:
        raise bad_value("--generator", cfg.generator, f"generator keys other than "
                        f"{', '.join(_STUDY_KEYS)} (the study sets those)",
                        "use --sizes, --correlations, --knob and --seeds instead")
    gen.update(user)
    target_only = {k: gen.pop(k) for k in _TARGET_ONLY if k in gen}
    shared = _join(gen)
    n_classes = int(gen.get("n_classes", 2))
    sources, targets = {}, {}
    for s in seeds:
        src = f"synthetic:role=source:{shared}:n={budget.source_n}:gen_seed={s}"
        sources[s] = str(TaskSpec.parse(src))  # an unknown key fails here, with the list
        for n in sizes:
            for lv in levels:
                knobs = {"eta": lv, "q": lv} if cfg.knob == "both" else {cfg.knob: lv}
                t = (f"synthetic:role=target:{shared}:{_join({**knobs, **target_only})}"
                     f":{_sample(n, n_classes, budget.val_per_class)}:gen_seed={s}")
                targets[(s, n, lv)] = str(TaskSpec.parse(t))
    return levels, sources, targets


def _sample(n: int, n_classes: int, val: int) -> str:
    """The target keys that give N training examples (N // classes per class) and ``val``
    validation examples per class drawn besides them (n* is chosen on validation; carving it
    from N = 20 would leave 2 examples to choose with). The generated pool (``n``) holds 1.5x
    what is drawn plus 50, so that every class of the (balanced in expectation) teacher
    labels has enough examples: the draw, not the pool, is the target size."""
    per = max(1, n // n_classes)
    pool = int(1.5 * n_classes * (per + val)) + 50
    return f"per_class={per}:val_per_class={val}:n={pool}"


def _images(cfg: DefrostConfig, budget: Budget, seeds: list[int], sizes: list[int],
            data_dir: str | None, notes: list[str]):
    from transferlab.data import make_task

    src_spec = TaskSpec.parse(cfg.source_task)
    tgt_spec = TaskSpec.parse(cfg.target_task)
    for flag, spec in (("--target-task", tgt_spec),):
        for key in ("per_class", "fraction", "seed"):
            if getattr(spec, key) not in (None, 0):
                raise bad_value(flag, cfg.target_task, f"a task without {key} (the study "
                                "sets the target size from --sizes and the draw per seed)",
                                f"remove {key}")
    extra = {}
    if getattr(tgt_spec, "size", None) is None and getattr(src_spec, "size", None) is None:
        extra["size"] = budget.image_size
    src_text = f"{cfg.source_task}:{_join(extra)}" if extra else cfg.source_task
    if src_spec.per_class is None and src_spec.fraction is None:
        src_text += f":per_class={budget.source_n // 10}"
        notes.append(f"source per_class = {budget.source_n // 10} (budget {budget.name})")
    tgt_text = f"{cfg.target_task}:{_join(extra)}" if extra else cfg.target_task
    probe = make_task(tgt_text + ":per_class=1", data_dir=data_dir, progress=False)
    n_classes = probe.num_classes
    label = str(TaskSpec.parse(cfg.target_task))
    sources = {s: str(TaskSpec.parse(src_text)) for s in seeds}
    targets = {}
    for s in seeds:
        for n in sizes:
            k = max(1, n // n_classes)
            targets[(s, n, label)] = str(TaskSpec.parse(f"{tgt_text}:per_class={k}:seed={s}"))
    if any(n % n_classes for n in sizes):
        notes.append(f"target size N = per_class x {n_classes} classes (per_class = N // "
                     f"{n_classes})")
    return [label], sources, targets


def design(cfg: DefrostConfig) -> Design:
    """Check the inputs and fix the study's tasks, model and depths (loads the data)."""
    from transferlab.data import make_task
    from transferlab.models import build_model

    budget = get_budget(cfg.budget)
    seeds = list(range(cfg.seeds))
    sizes = list(cfg.sizes) if cfg.sizes is not None else list(budget.sizes)
    notes: list[str] = []
    if cfg.synthetic:
        levels, sources, targets = _synthetic(cfg, budget, seeds, sizes)
        notes.append(f"validation: {budget.val_per_class} examples per class drawn besides "
                     "the N training examples; n* is chosen on it, test only reports")
        arch, arch_kwargs = "mlp", {"depth": budget.mlp_depth, "width": budget.mlp_width}
        kind, knob = "synthetic", cfg.knob
    else:
        levels, sources, targets = _images(cfg, budget, seeds, sizes, cfg.data_dir, notes)
        arch, arch_kwargs = "convnet", {"width": budget.conv_width,
                                        "fc_width": budget.fc_width}
        kind, knob = "images", None
    src = make_task(sources[seeds[0]], data_dir=cfg.data_dir, progress=False)
    tgt = make_task(targets[(seeds[0], sizes[-1], levels[0])], data_dir=cfg.data_dir,
                    progress=False)
    if src.input_shape != tgt.input_shape:
        raise bad_value("--target-task", cfg.target_task, f"inputs shaped like the source's "
                        f"{src.input_shape} (got {tgt.input_shape})",
                        "give both tasks the same size= and channels=")
    model = build_model(arch, num_classes=src.num_classes, **src.model_kwargs, **arch_kwargs)
    n_blocks = len(model.block_names)
    allowed = list(range(0, n_blocks + 1))
    depths = allowed if cfg.depths is None else sorted({int(d) for d in cfg.depths})
    bad = [d for d in depths if d not in allowed]
    if bad or not depths:
        raise bad_value("--depths", bad[0] if bad else depths, f"depths in 0..{n_blocks} "
                        f"(the {arch} has L = {n_blocks} blocks: {', '.join(model.block_names)})",
                        "drop the depths beyond the model")
    return Design(kind, budget, seeds, sizes, levels, knob, depths, n_blocks,
                  list(model.block_names), arch, arch_kwargs, sources, targets, cfg.reinit,
                  cfg.data_dir, notes)


def tag(d: Design) -> str:
    """Folder-safe name of the pair: "synthetic" or "mnist-kmnist"."""
    if d.kind == "synthetic":
        return "synthetic"
    src = d.source_tasks[d.seeds[0]].split(":")[0]
    tgt = str(d.levels[0]).split(":")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{src}-{tgt}")


def source_entry(d: Design, seed: int) -> dict:
    """The sweep's source recipe for ``seed`` (pretrained once, cached by recipe)."""
    return {"pretrain": {"task": d.source_tasks[seed], "arch": d.arch,
                         "arch_kwargs": dict(d.arch_kwargs),
                         "train": d.budget.source_train(), "seed": SOURCE_SEED + seed}}


def sweep_specs(d: Design, seed: int | None = None) -> list[dict]:
    """The sweep specs: ``freeze`` and ``scratch`` per (seed, N); every seed or one."""
    if seed is None:
        return [spec for s in d.seeds for spec in sweep_specs(d, s)]
    specs = []
    for n in d.sizes:
        targets = [d.targets[(seed, n, lv)] for lv in d.levels]
        common = {"target": targets[0], "train": d.budget.train(n), "data_dir": d.data_dir,
                  "sources": {"source": source_entry(d, seed)}}
        protocols = ["freeze"] + (["reinit"] if d.reinit else [])
        name = f"defrost-{tag(d)}-s{seed}-n{n}"
        specs.append({"name": f"{name}-freeze", **common,
                      "axes": {"protocol": protocols, "depth": d.depths, "target": targets,
                               "seed": [seed]}})
        specs.append({"name": f"{name}-scratch", **common,
                      "axes": {"protocol": ["scratch"], "target": targets, "seed": [seed]},
                      **({"keep": ["weights"]} if n == d.sizes[-1] else {})})
    return specs

