"""Measuring a case: its source, the advisor's evidence, and every candidate over fixed
seeds, into a resumable store (one JSON line per measurement).

A *record* is one of

* ``{"kind": "evidence", "case", "evidence": Evidence.to_dict(), "time_s"}``: what
  ``advise`` reads (one frozen pass and probes; never the test split);
* ``{"kind": "trial", "case", "label", "seed", "val_acc", "test_acc", "train_time_s",
  "test_time_s", "epochs"}``: one candidate trained with one seed.

The store is append-only: a rerun skips every record already there, so a run cut short
resumes where it stopped. Sources are built once per ``(family, recipe)`` and kept as
checkpoints beside the store (``advise --verify`` races from a checkpoint path).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from transferlab.cases.core import CaseConfig

# The advisor's quick budget trains every SGD candidate: 10 epochs, at least 100 steps.
TRAIN = {"epochs": 10, "lr": 0.05, "batch_size": 64, "min_steps": 0}
MIN_STEPS = 100
ALIASES = {"freeze:0": "finetune (lr_mult 1)"}  # the same plan, measured once (tests/test_cases)


class Store:
    """Append-only JSON-lines store of records, indexed by (kind, case, label, seed)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records: dict[tuple, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    self.records[self.key(r)] = r

    @staticmethod
    def key(r: dict) -> tuple:
        return (r["kind"], r["case"], r.get("label"), r.get("seed"))

    def get(self, kind: str, case: str, label: str | None = None, seed: int | None = None):
        return self.records.get((kind, case, label, seed))

    def put(self, r: dict) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:  # one line per record: a crash loses at most one
            f.write(json.dumps(r, default=float) + "\n")
        self.records[self.key(r)] = r
        return r

    def trials(self, case: str) -> dict[str, list[dict]]:
        """{label: [trial records]} of ``case``."""
        out: dict[str, list[dict]] = {}
        for (kind, c, label, _), r in sorted(self.records.items(), key=lambda kv: str(kv[0])):
            if kind == "trial" and c == case:
                out.setdefault(label, []).append(r)
        return out


def source_model(case: CaseConfig, folder: Path, data_dir: str | None = None):
    """(BlockModel, checkpoint path) of the case's source, built once and cached."""
    from transferlab.checkpoint import load_checkpoint, save_checkpoint

    recipe = {"pretrained": case.pretrained, "image_size": case.image_size,
              "source_task": case.source_task, "arch": case.arch,
              "arch_kwargs": [list(p) for p in case.arch_kwargs],
              "epochs": case.pretrain_epochs}
    tag = case.family or case.name
    path = folder / f"{tag}-{_digest(recipe)}.safetensors"
    if path.exists():
        return load_checkpoint(str(path))[0], path
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if case.pretrained == "efficientnet_lite0":
        from transferlab.models import build_model
        model = build_model("efficientnet_lite0", 1000, 3, case.image_size, pretrained=True)
        meta = {"task": "imagenet", "classes": [str(i) for i in range(1000)]}
    elif case.pretrained == "minilm":  # the built-in source, with its tokenizer
        model, meta = load_checkpoint("minilm")
        meta = {k: v for k, v in meta.items() if k in ("task", "classes", "tokenizer")}
    else:
        from transferlab.api import pretrain
        from transferlab.data import make_task
        task = make_task(case.source_task, data_dir=data_dir)
        model = pretrain(task, case.arch, {**TRAIN, "epochs": case.pretrain_epochs}, seed=0,
                         progress=False, **dict(case.arch_kwargs)).model
        meta = {"task": case.source_task, "classes": [str(c) for c in task.classes]}
    save_checkpoint(str(path), model, {**meta, "protocol": "pretrained", "seed": 0,
                                       "metrics": {"build_time_s": time.perf_counter() - t0},
                                       "case_recipe": recipe})
    return model, path


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (os.times). With one thread
    per process this is a cost that another job on the machine barely changes, where wall
    time on a shared 2-core machine varied 50x (52 s vs 1 s for one k = 5 fine-tune)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _digest(obj) -> str:
    import hashlib
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def train_config(task) -> dict:
    """The training every SGD candidate of a case gets (the advisor's quick budget)."""
    from transferlab.advise.budgets import epochs_for

    return {**TRAIN, "epochs": epochs_for(len(task.y_train), TRAIN["epochs"], MIN_STEPS,
                                          TRAIN["batch_size"])}


def resolve_label(case: CaseConfig, label: str, num_blocks: int) -> str:
    """A candidate label as the store keys it: 'freeze:half' at this source's depth, then
    ``ALIASES`` (freeze:0 is measured as finetune at lr_mult 1)."""
    if label == "freeze:half":
        label = case.protocol_of(label, num_blocks)[0]
    return ALIASES.get(label, label)


def logme_label(evidence: dict) -> str:
    """LogME's best depth (``Evidence.to_dict()``) as a protocol: freeze:d below the top,
    linear-probe at it (ties: the deeper)."""
    best = max(evidence["per_depth"], key=lambda r: (r["logme"], r["depth"]))["depth"]
    return f"freeze:{best}" if best < evidence["top_depth"] else "linear-probe"


def measure_trial(store: Store, case: CaseConfig, model, task, label: str, seed: int,
                  train: dict) -> dict:
    """The record of ``label`` at ``seed`` (trained now unless the store has it)."""
    label = resolve_label(case, label, model.num_blocks)
    got = store.get("trial", case.name, label, seed)
    if got is not None:
        return got
    from transferlab.api import transfer

    proto, lr_mult = case.protocol_of(label, model.num_blocks)
    cfg = {**train, **({"lr_mult": lr_mult} if lr_mult is not None else {})}
    t0, c0 = time.perf_counter(), cpu_seconds()
    res = transfer(model, task, proto, cfg, seed=seed, progress=False)
    m = res.metrics
    return store.put({"kind": "trial", "case": case.name, "label": label, "seed": seed,
                      "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"),
                      "train_time_s": m.get("train_time_s"),
                      "test_time_s": m.get("test_time_s"), "wall_s": time.perf_counter() - t0,
                      "cpu_s": cpu_seconds() - c0,
                      "epochs": cfg["epochs"], "outcome": m.get("outcome")})


def measure_evidence(store: Store, case: CaseConfig, model, task) -> dict:
    """The advisor's evidence for the case (quick budget), measured once."""
    got = store.get("evidence", case.name)
    if got is not None:
        return got
    from transferlab.advise.budgets import get_budget
    from transferlab.advise.evidence import measure

    t0, c0 = time.perf_counter(), cpu_seconds()
    ev = measure(model, task, per_class=get_budget("quick").evidence_per_class)
    return store.put({"kind": "evidence", "case": case.name, "evidence": ev.to_dict(),
                      "time_s": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0})


def candidate_labels(case: CaseConfig, num_blocks: int, best_depth: int) -> list[str]:
    """What a case measures: the advisor's candidates (``rules.candidate_set``) and every
    constant rule's pick, aliases resolved."""
    from transferlab.advise.rules import candidate_set
    from transferlab.cases.core import CONSTANT_RULES

    labels = [c.label for c in candidate_set(num_blocks, best_depth, 1, 0.05)]
    labels += CONSTANT_RULES.values()
    return list(dict.fromkeys(resolve_label(case, lab, num_blocks) for lab in labels))


def measure_case(store: Store, case: CaseConfig, seeds: list[int], sources: Path,
                 data_dir: str | None = None, progress=None) -> dict:
    """Evidence and every candidate x seed of ``case``; returns {label: [records]}."""
    from transferlab.data import make_task

    model, _ = source_model(case, sources, data_dir)
    task = make_task(case.target_task, data_dir=data_dir)
    ev = measure_evidence(store, case, model, task)
    train = train_config(task)
    labels = candidate_labels(case, model.num_blocks, ev["evidence"]["best_depth"])
    # LogME's best depth is a rule the scoreboard scores: its pick is measured too
    for label in dict.fromkeys([*labels, logme_label(ev["evidence"])]):
        for s in seeds:
            r = measure_trial(store, case, model, task, label, s, train)
            if progress:
                progress(f"{case.name} {label} seed {s}: val {r['val_acc']:.3f} "
                         f"test {r['test_acc']:.3f} ({r['wall_s']:.1f} s)")
    return store.trials(case.name)
