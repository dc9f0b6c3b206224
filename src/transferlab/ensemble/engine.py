"""How a strategy runs its members: stages of trials on the sweep engine.

A *stage* is one sweep: the same protocol and budget for a list of member checkpoints,
one trial each (seed = the ensemble's seed), run in parallel by the local backend and
stored in the ensemble's SQLite database, so a killed run resumes and two strategies that
share a trial (``independent`` and the references of ``shift``) run it once. Every trial
keeps its weights and test-set probabilities (``load_trial_model`` / ``load_trial_probs``).

Time: a strategy's ``wall_time_s`` is its serial compute, the sum over its trials of the
recorded training and feature time, plus what the driver itself did for it (the shift
vector, BatchNorm re-estimation; checkpoint writes, like a trial's kept outputs, are not
counted). It does not depend on how many trials ran in parallel or on whether a trial was
already stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab.errors import UserError


@dataclass
class Context:
    """What every strategy of one ensemble run shares."""

    task: str                     # target task string
    members: list[str]            # source checkpoint paths (weights files)
    db: Path                      # the sweep store
    train: dict                   # TrainConfig fields; "epochs" = the full fine-tune budget
    seed: int = 0
    workers: int | None = None
    data_dir: str | None = None
    progress: bool = False
    _task: object = None          # the loaded target task (on first use)
    fuse: bool | None = None      # members' trials as one fused job (run_sweep's fuse)

    @property
    def work(self) -> Path:
        """Folder for checkpoints a strategy writes (shifted members)."""
        return self.db.with_name(self.db.name + ".ensemble")

    def target(self):
        """The target ``Task`` (loaded once)."""
        if self._task is None:
            from transferlab.data import make_task

            self._task = make_task(self.task, data_dir=self.data_dir)
        return self._task


@dataclass
class Trial:
    """One member's trial as the store holds it."""

    key: str
    source: str
    metrics: dict
    probs: np.ndarray             # (N_test, C) float32
    labels: np.ndarray            # (N_test,)

    @property
    def time_s(self) -> float:
        return float(self.metrics.get("train_time_s") or 0) + \
            float(self.metrics.get("feature_time_s") or 0)

    @property
    def epochs(self) -> int:
        return int(self.metrics.get("epochs_run") or 0)


@dataclass
class StrategyRun:
    """A strategy's members (in member order) and what it cost."""

    trials: list[Trial]
    overhead_s: float = 0.0       # driver-side work (shift vector, BN statistics)
    extra: dict = field(default_factory=dict)

    @property
    def member_probs(self) -> np.ndarray:
        return np.stack([t.probs for t in self.trials])

    @property
    def labels(self) -> np.ndarray:
        return self.trials[0].labels

    @property
    def wall_time_s(self) -> float:
        return sum(t.time_s for t in self.trials) + self.overhead_s

    @property
    def epochs(self) -> int:
        return sum(t.epochs for t in self.trials)


def run_stage(ctx: Context, stage: str, sources: list[str], protocol: str,
              epochs: int) -> list[Trial]:
    """Run ``protocol`` for ``epochs`` from each checkpoint in ``sources`` on the sweep
    engine; the trials in the order of ``sources``. A failed or diverged trial is an error
    naming it."""
    from transferlab.sweep import load_trial_probs, run_sweep

    names = [f"m{i}" for i in range(len(sources))]
    spec = {"name": f"ensemble-{stage}", "target": ctx.task,
            "sources": {n: {"checkpoint": str(s)} for n, s in zip(names, sources)},
            "axes": {"protocol": [protocol], "seed": [ctx.seed]},
            # min_steps 0: a strategy's compute is counted in these epochs (StrategyRun.epochs,
            # matched-compute comparisons); the floor would change it behind the count
            "train": {**ctx.train, "epochs": int(epochs), "min_steps": 0},
            "keep": ["probs", "weights"]}
    if ctx.data_dir:
        spec["data_dir"] = str(ctx.data_dir)
    df = run_sweep(spec, ctx.db, workers=ctx.workers, progress=ctx.progress,
                   keep=["probs", "weights"], fuse=ctx.fuse)
    from transferlab.sweep.failures import summarize_failures

    failed = summarize_failures(df)
    if failed is not None:  # every member is needed: one failure stops the strategy
        raise failed.error(f"stage {stage!r} ({protocol}, {epochs} epochs)",
                           "every member must finish: lower the learning rate (--lr) for a "
                           "diverged one, or check the member")
    by_source = {r["source"]: r for r in df.to_dict("records")}
    out = []
    for name, src in zip(names, sources):
        row = by_source[name]
        if row["status"] != "done" or row.get("outcome") != "ok":
            why = row.get("error") or row.get("reason") or row["status"]
            raise UserError(f"stage {stage!r}: the trial from {src} ({protocol}, {epochs} "
                            f"epochs) did not finish: {str(why).splitlines()[0]}; lower the "
                            "learning rate (--lr) or check the member")
        probs, labels = load_trial_probs(ctx.db, row["key"])
        metrics = {k: row.get(k) for k in ("train_time_s", "feature_time_s", "epochs_run",
                                           "test_acc", "test_nll", "val_acc", "test_time_s")}
        out.append(Trial(row["key"], str(src), metrics, probs, labels))
    return out


def timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), seconds)``."""
    t0 = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - t0
