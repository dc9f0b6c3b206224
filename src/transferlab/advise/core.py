"""``advise(source, task)``: measure the scenario, recommend a protocol, explain, verify."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.advise.budgets import AdviseBudget, epochs_for, get_budget
from transferlab.advise.evidence import Evidence, measure
from transferlab.advise.explain import explain
from transferlab.advise.rules import Candidate, Thresholds, candidate_set, rank, scenario
from transferlab.errors import bad_value


@dataclass
class Advice:
    """What ``advise`` returns; ``to_dict()`` is the CLI's ``--json``.

    ``verified``: with ``verify=True``, one dict per raced candidate (protocol, label,
    lr_mult, epochs, val_acc, test_acc, wall_time_s, rungs); ``race`` its summary (winner,
    overturned, cost).
    """

    source: str
    task: str
    budget: AdviseBudget
    thresholds: Thresholds
    size: str
    similarity: str
    evidence: Evidence
    recommendation: Candidate
    alternatives: list[Candidate]
    explanation: str
    verified: list[dict] | None = None
    race: dict | None = None
    time_s: float = 0.0
    files: dict = field(default_factory=dict)
    # the development cases the advice rests on (name, distance, the advised family's
    # validation regret there); empty when the guide's table decided (no case base)
    rests_on: list[dict] = field(default_factory=list)

    @property
    def runner_up(self) -> Candidate | None:
        return self.alternatives[0] if self.alternatives else None

    def to_dict(self) -> dict:
        from transferlab.provenance import provenance

        return {"source": self.source, "task": self.task, "budget": self.budget.to_dict(),
                "thresholds": self.thresholds.to_dict(),
                "scenario": {"size": self.size, "similarity": self.similarity,
                             "evidence": self.evidence.to_dict()},
                "recommendation": self.recommendation.to_dict(),
                "runner_up": self.runner_up.to_dict() if self.runner_up else None,
                "alternatives": [c.to_dict() for c in self.alternatives],
                "explanation": self.explanation, "verified": self.verified,
                "race": self.race, "time_s": self.time_s, "files": self.files,
                "rests_on": self.rests_on,
                "provenance": provenance()}


def _load_source(source) -> tuple[object, str]:
    from transferlab.checkpoint import load_checkpoint
    from transferlab.models import BlockModel

    if isinstance(source, BlockModel):
        return source, "<model>"
    if isinstance(source, (str, os.PathLike)):
        return load_checkpoint(source)[0], str(source)
    raise bad_value("source", type(source).__name__, "a checkpoint path or a BlockModel")


def _load_task(task, data_dir):
    from transferlab.data import Task, make_task

    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return make_task(task, data_dir=data_dir)
    raise bad_value("task", type(task).__name__, "a task string or a Task")


def probe_available() -> bool:
    """Is the ``probe:n`` protocol registered in this tree?"""
    from transferlab.protocols import protocol_names

    return "probe:n" in protocol_names()


def recommend(ev: Evidence, num_blocks: int, budget: AdviseBudget, th: Thresholds,
              cases=None) -> tuple[str, str, list[Candidate], list[dict]]:
    """(size, similarity, candidates in order of preference, the development cases the
    order rests on) from measured evidence. With a case base (``advise.casebase``) its
    nearest development cases order the families; the guide's scenario order follows."""
    from transferlab.advise.rules import resolve

    size, sim = scenario(ev.examples_per_class, ev.retained, th)
    epochs = epochs_for(ev.n_train, budget.epochs, budget.min_steps, budget.batch_size)
    cands = candidate_set(num_blocks, ev.best_depth, epochs, budget.lr,
                          probe_ok=probe_available())
    ranked = rank(cands, size, sim, ev.best_depth, num_blocks, th)
    if cases is None:
        return size, sim, ranked, []
    families, rests_on = cases.rank(ev.to_dict())
    first = [resolve(f, cands, ev.best_depth, num_blocks) for f in families]
    order = list(dict.fromkeys(c for c in [*first, *ranked] if c is not None))
    return size, sim, order, rests_on


def advise(source, task, *, verify: bool = False, budget: str | AdviseBudget = "quick",
           seeds: int | list[int] = 1, progress: bool = True,
           out: str | os.PathLike | None = None, data_dir: str | None = None,
           thresholds: Thresholds | None = None, workers: int | None = None,
           cases: str | os.PathLike | bool | None = None) -> Advice:
    """How to transfer ``source`` to ``task``: scenario, protocol and settings, explanation.

    Args:
        source: a checkpoint path (``.safetensors`` with its sidecar) or a BlockModel
            (``verify`` then saves it under ``out``).
        task: a task string (``verify`` needs one: the race runs on the sweep engine) or a
            Task.
        verify: race the top ``budget.race_size`` candidates by successive halving on the
            sweep engine (validation accuracy decides; test accuracy is only reported).
        budget: "quick" (CPU) or "standard"; see ``advise.budgets``.
        seeds: race seeds: a count (0..N-1) or a list; the race ranks by the mean.
        out: folder for ``advice.json``, ``report.html`` and the race's database (a rerun
            resumes the race); None writes nothing (the race then uses a temp folder).
        thresholds: the lines of the scenarios (default: the calibrated ones).
        cases: the case base whose nearest development cases order the candidates: True
            (the packaged one, when this tree ships it), a path to one, False (the
            guide's scenario table alone), or None (the packaged one unless
            ``thresholds`` are given: explicit lines ask for the table).
    """
    t0 = time.perf_counter()
    b = get_budget(budget)
    th = thresholds or Thresholds()
    seed_list = _seeds(seeds)
    if out is not None:
        from transferlab._paths import check_output_dir

        check_output_dir(str(out), "--out", {"--source": source if isinstance(source, str)
                                             else None},
                         writes=["advice.json", "report.html", "depths.png", "race.png",
                                 "advise.sqlite"])
    if verify and not isinstance(task, str):
        raise bad_value("task", type(task).__name__, "a task string with verify=True (the "
                        "race's trials rebuild the task from it)", "pass the task's string")
    model, src_name = _load_source(source)
    t = _load_task(task, data_dir)
    from transferlab.models.compat import check_runs_on

    check_runs_on(model, t.x_train, "source", str(t.spec))
    ev = measure(model, t, per_class=b.evidence_per_class)
    from transferlab._chance import check_decision

    check_decision("advise", {f"depth {r.depth}": r.probe_val_acc for r in ev.per_depth},
                   ev.num_classes, ev.n_evidence_val, "linear-probe validation accuracy",
                   "the source's features do not separate this task's classes: label more "
                   "examples (per_class) or pick another --source")
    from transferlab.advise import casebase

    if cases is None:
        cases = thresholds is None
    cb = casebase.load(None if cases is True else cases) if cases else None
    size, sim, ranked, rests_on = recommend(ev, model.num_blocks, b, th, cb)
    adv = Advice(src_name, str(t.spec), b, th, size, sim, ev, ranked[0], ranked[1:],
                 explain(ev, size, sim, ranked[0], ranked[1] if len(ranked) > 1 else None, th,
                         rests_on), rests_on=rests_on)
    if verify:
        from transferlab.advise.verify import race

        folder = Path(out) if out is not None else None
        adv.verified, adv.race = race(source if src_name != "<model>" else model, task,
                                      ranked[:b.race_size], b, seed_list, folder, data_dir,
                                      progress=progress, workers=workers)
        winner = adv.race["winner"]
        if adv.race["overturned"]:
            adv.explanation += (f" Verified: the race overturned the advice: {winner} reached "
                                f"the best validation accuracy ({adv.race['winner_val_acc']:.3f}"
                                f" vs {adv.race['advised_val_acc']:.3f}).")
        else:
            adv.explanation += (f" Verified: the race confirmed {winner} (validation accuracy "
                                f"{adv.race['winner_val_acc']:.3f}).")
    adv.time_s = time.perf_counter() - t0
    if out is not None:
        from transferlab.advise.report import write_outputs
        adv.files = write_outputs(adv, Path(out))
    return adv


def _seeds(seeds) -> list[int]:
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list, tuple)):
        raise bad_value("seeds", seeds, "a count >= 1 or a list of distinct seeds >= 0")
    out = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not out or len(set(out)) != len(out) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in out):
        raise bad_value("seeds", seeds, "a count >= 1 or a list of distinct seeds >= 0")
    return out
