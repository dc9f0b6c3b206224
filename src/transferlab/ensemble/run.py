"""``transfer_ensemble``: move an ensemble of source members to a target task, by strategy."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab.ensemble.engine import Context, StrategyRun
from transferlab.ensemble.members import check_members, pretrain_members
from transferlab.ensemble.registry import StrategyConfig, get_strategy
from transferlab.errors import UserError, bad_value

DEFAULT_TRAIN = {"epochs": 10}


@dataclass
class EnsembleResult:
    """One row of metrics per strategy, and each strategy's members' test probabilities."""

    rows: list[dict]                          # see ``metrics_row``
    probs: dict[str, np.ndarray]              # label -> (M, N_test, C)
    labels: np.ndarray                        # (N_test,)
    runs: dict[str, StrategyRun] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)   # the source checkpoints
    context: Context | None = None


def metrics_row(label: str, run: StrategyRun) -> dict:
    """``{strategy, accuracy, nll, ece, brier, disagreement, member_accuracy, member_nll,
    member_brier, wall_time_s, epochs, members}`` of one strategy's run."""
    from transferlab.metrics import ensemble_metrics

    m = ensemble_metrics(run.member_probs, run.labels)
    return {"strategy": label, **m, "wall_time_s": run.wall_time_s, "epochs": run.epochs,
            "overhead_s": run.overhead_s,
            # scoring the members on the test split (evaluation, not transfer): its time
            "test_time_s": sum(float(t.metrics.get("test_time_s") or 0) for t in run.trials),
            "member_test_acc": [t.metrics.get("test_acc") for t in run.trials]}


def resolve_members(members: list[str] | None, pretrain: str | None, n_members: int | None,
                    work: Path, arch: str = "convnet", pretrain_train: dict | None = None,
                    data_dir: str | None = None, progress: bool = False,
                    arch_kwargs: dict | None = None) -> list[str]:
    """The source checkpoints: ``members`` as given, or ``n_members`` pretrained on
    ``pretrain`` (seeds 0..M-1, kept in ``work/members``). Checked to share one arch."""
    if members and pretrain:
        raise UserError("members and pretrain are both given: allowed is one of them; pass "
                        "source checkpoints, or --pretrain TASK --members M")
    if pretrain:
        if not isinstance(n_members, int) or isinstance(n_members, bool) or n_members < 1:
            raise bad_value("members", n_members, "an integer >= 1 with --pretrain",
                            "e.g. --members 5")
        from transferlab.data import TaskSpec

        TaskSpec.parse(pretrain)  # a bad task string fails before any training
        recipe = [pretrain, arch, sorted((arch_kwargs or {}).items()),
                  sorted((pretrain_train or {}).items())]
        folder = work / "members" / _slug(repr(recipe))
        members = pretrain_members(pretrain, n_members, folder, arch, pretrain_train,
                                   data_dir, progress, arch_kwargs)
    return check_members(list(members or []))


def _slug(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def transfer_ensemble(task: str, members: list[str] | None = None,
                      strategies: list[str | StrategyConfig] = ("independent", "shift"),
                      pretrain: str | None = None, n_members: int | None = None,
                      train: dict | None = None, seed: int = 0, db: str | None = None,
                      workers: int | None = None, data_dir: str | None = None,
                      arch: str = "convnet", pretrain_train: dict | None = None,
                      out: str | None = None, progress: bool = False,
                      arch_kwargs: dict | None = None,
                      fuse: bool | None = None) -> EnsembleResult:
    """Transfer an ensemble to ``task`` with each strategy; metrics and times per strategy.

    Args:
        task: the target task string, e.g. ``"digits:classes=5-9:per_class=20:size=16"``.
        members: source checkpoints (one architecture); or ``pretrain`` + ``n_members``:
            the built-in ``arch`` pretrained on that task with seeds 0..M-1
            (``pretrain_train``: its TrainConfig fields).
        strategies: registered strategy strings (``"shift:alpha=0.5"``, see
            ``strategy_names``); each string is its row's label.
        train: TrainConfig fields shared by every trial; ``epochs`` is the full budget.
        db: the sweep store (resumable); None: ``out/ensemble.sqlite`` with ``out``, else a
            temporary one, removed afterwards.
        out: a folder to save every strategy's members and ``manifest.json`` in (read by
            ``add_member`` and ``predict``; see ``transferlab.ensemble.manifest``).
        fuse: train a stage's members as one fused model (``transferlab.train.fused``;
            run_sweep's ``fuse``): None on CUDA only, True, False.
    Returns: ``EnsembleResult`` with one metrics row per strategy (``metrics_row``).
    """
    from transferlab.data import TaskSpec
    from transferlab.train import TrainConfig

    configs = {str(s) if isinstance(s, str) else s.name: get_strategy(s) for s in strategies}
    if not configs:
        raise bad_value("strategies", "none", "at least one registered strategy")
    train = {**DEFAULT_TRAIN, **(train or {})}
    TrainConfig.from_dict(train)  # every field checked before anything runs
    if pretrain is not None:
        TrainConfig.from_dict({**train, **(pretrain_train or {})})
    task = str(TaskSpec.parse(task))
    if members is not None and pretrain is None:
        for cfg in configs.values():
            cfg.check_members(len(members))
    elif pretrain is not None and isinstance(n_members, int):
        for cfg in configs.values():
            cfg.check_members(n_members)
    checked = None
    if members is not None and pretrain is None:  # before any folder or store is created
        from transferlab.checkpoint import load_checkpoint
        from transferlab.data import make_task
        from transferlab.ensemble.members import check_members
        from transferlab.models.compat import check_runs_on

        # kept: resolve_members would load and check every member a second time (0.02 s
        # of a 1 s ensemble on cifar10, paid by every strategy)
        checked = check_members(list(members))
        t = make_task(task, data_dir=data_dir, progress=progress)
        check_runs_on(load_checkpoint(members[0])[0], t.x_train, "member 0", task)
    tmp = None
    if db is None and out is not None:
        db = str(Path(out) / "ensemble.sqlite")
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="transferlab-ensemble-")
        db = str(Path(tmp.name) / "ensemble.sqlite")
    try:
        dbp = Path(db)
        dbp.parent.mkdir(parents=True, exist_ok=True)
        ctx = Context(task, [], dbp, train, seed, workers, data_dir, progress, fuse=fuse)
        ctx.members = checked if checked is not None else resolve_members(
            members, pretrain, n_members, ctx.work, arch, pretrain_train, data_dir, progress,
            arch_kwargs)
        for cfg in configs.values():
            cfg.check_members(len(ctx.members))
        runs = {label: cfg.run(ctx) for label, cfg in configs.items()}
        rows = [metrics_row(label, r) for label, r in runs.items()]
        first = next(iter(runs.values()))
        res = EnsembleResult(rows, {k: r.member_probs for k, r in runs.items()},
                             first.labels, runs, list(ctx.members), ctx)
        if out is not None:
            from transferlab.ensemble.manifest import save_ensemble

            save_ensemble(out, res, configs)
        return res
    finally:
        if tmp is not None:
            tmp.cleanup()


def finite_rows(rows: list[dict]) -> list[dict]:
    """Rows with non-finite floats as None (for JSON)."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in r.items()} for r in rows]
