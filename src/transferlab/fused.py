"""``transfer_fused``: several ``transfer`` runs of one source and task as one fused job.

The Task-level entry point over ``transferlab.train.fused.fit_fused`` (which takes
tensors and protocol objects): T trials that differ by seed, learning rate, lr_mult or the
depth of a depth-taking protocol, trained together on the task's device, each returned as
the ``TransferResult`` its own ``transfer(source, task, protocol, train, seed)`` would give
(to float32 rounding: see tests/test_fused.py).

>>> from transferlab import make_task
>>> from transferlab.fused import transfer_fused, FusedTrial
>>> # res = transfer_fused(src, make_task("digits:classes=5-9"), "freeze:3",
>>> #                      [FusedTrial(seed=s) for s in range(8)], {"epochs": 5})
"""

from __future__ import annotations

import copy

import torch

from transferlab.api import TransferResult
from transferlab.data import Task
from transferlab.errors import UserError
from transferlab.models import BlockModel
from transferlab.models.compat import check_runs_on
from transferlab.models.heads import replace_head
from transferlab.protocols import Protocol, get_protocol
from transferlab.train import TrainConfig
from transferlab.train.fused import FusedTrial, FusedTrialResult, check_fusable, fit_fused

__all__ = ["FusedTrial", "fusable", "run_trials_fused", "transfer_fused"]


def fusable(protocol: str | Protocol, train: TrainConfig | dict | None,
            x: object = None) -> str:
    """'' when trials of ``protocol`` with ``train`` can run fused, else the reason."""
    try:
        cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train)
        check_fusable([get_protocol(protocol)], cfg,
                      x if x is not None else torch.empty(0))
    except UserError as exc:
        return str(exc)
    return ""


def _model_of(source: BlockModel, num_classes: int, state: dict) -> BlockModel:
    """A CPU model of ``source``'s structure with a ``num_classes`` head holding ``state``."""
    model = copy.deepcopy(source).cpu()
    replace_head(model, num_classes)
    model.load_state_dict(state)
    return model.eval()


def transfer_fused(source: BlockModel, task: Task, protocol: str | Protocol,
                   trials: list[FusedTrial], train: TrainConfig | dict | None = None,
                   keep_probs: bool = True) -> list[TransferResult]:
    """``transfer(source, task, trial.protocol or protocol, train | trial, trial.seed)`` for
    every trial, trained as one fused model on ``train``'s device.

    ``trials``: per-trial seed, lr, lr_mult and protocol (a name or ``Protocol`` that differs
    from ``protocol`` by depth only). Returns one ``TransferResult`` per trial (model on the
    CPU, metrics as ``transfer``'s plus ``fused_trials``, history, config, test softmax
    when ``keep_probs``). Raises ``UserError`` for what only ``transfer`` runs.
    """
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train)
    proto = get_protocol(protocol)
    trials = [FusedTrial(t.seed, t.lr, t.lr_mult,
                         get_protocol(t.protocol) if t.protocol is not None else None)
              for t in trials]
    device = cfg.resolved_device()
    first = (task.x_train if len(task.y_train) else task.x_test)[:1]
    if isinstance(first, torch.Tensor):
        check_runs_on(copy.deepcopy(source).to(device), first.to(device), "source",
                      str(task.spec))
    task = task.to(device)
    results: list[FusedTrialResult] = fit_fused(
        source, proto, trials, task.x_train, task.y_train, task.x_val, task.y_val,
        task.x_test, task.y_test, task.num_classes, cfg, keep_probs=keep_probs)
    out = []
    for r in results:
        config = {**r.config, "task": str(task.spec), "classes": list(task.classes)}
        out.append(TransferResult(_model_of(source, task.num_classes, r.state), r.metrics,
                                  r.history, config, r.test_probs))
    return out


def run_trials_fused(cfgs: list[dict], keep: tuple[str, ...] | list[str] = (),
                     artifacts_dirs: list[str | None] | None = None,
                     progress: bool = False) -> list[dict]:
    """``run_trial(cfg)`` for sweep trials of one source architecture, protocol shape and
    train config that differ by seed, source checkpoint, lr, lr_mult, protocol depth and
    the task's sample (``episode`` / ``seed`` keys: per-trial support sets of one size),
    as one fused job.

    Returns one metrics dict per config, as ``run_trial``'s (with ``"artifacts"`` when
    ``keep``). Raises ``UserError`` when the configs cannot run as one job (the caller runs
    them one by one with ``run_trial``, which reports each trial's own error).
    """
    from transferlab.api import checkpoint_meta, run_trial
    from transferlab.checkpoint import load_checkpoint
    from transferlab.data import make_task

    first = cfgs[0]
    if any(c.get("data_dir") != first.get("data_dir") for c in cfgs) or \
            any(not c.get("source") for c in cfgs):
        raise UserError("fused trials need source checkpoints and one data_dir; run them "
                        "with run_trial")
    if len(cfgs) == 1:
        return [run_trial(first, keep=keep, artifacts_dir=(artifacts_dirs or [None])[0],
                          progress=progress)]
    tasks: dict[str, Task] = {}
    for c in cfgs:
        if c["task"] not in tasks:
            tasks[c["task"]] = make_task(c["task"], data_dir=c.get("data_dir"),
                                         progress=progress)
        fp = c.get("task_fingerprint")
        if fp and fp != tasks[c["task"]].fingerprint:
            raise UserError(f"task={c['task']!r}: its data changed since the sweep was "
                            "planned; run_trial reports it")
    loaded: dict[str, BlockModel] = {}
    for c in cfgs:
        if c["source"] not in loaded:
            loaded[c["source"]] = load_checkpoint(c["source"])[0]
    base = {k: v for k, v in (first.get("train") or {}).items() if k not in ("lr", "lr_mult")}
    for c in cfgs:
        if {k: v for k, v in (c.get("train") or {}).items()
                if k not in ("lr", "lr_mult")} != base:
            raise UserError("fused trials need one train config except lr and lr_mult; "
                            "run them with run_trial")
    trials = [FusedTrial(int(c.get("seed", 0)), (c.get("train") or {}).get("lr"),
                         (c.get("train") or {}).get("lr_mult"), get_protocol(c["protocol"]))
              for c in cfgs]
    per = [tasks[c["task"]] for c in cfgs]
    results = _transfer_many([loaded[c["source"]] for c in cfgs], per, trials,
                             TrainConfig.from_dict(base), keep_probs="probs" in keep)
    if not keep:
        return [r.metrics for r in results]
    from transferlab.sweep.artifacts import save_trial_outputs

    out = []
    for c, r, t, folder in zip(cfgs, results, per, artifacts_dirs or [None] * len(cfgs)):
        meta = checkpoint_meta(r, trial_config=c, task_fingerprint=t.fingerprint)
        written = save_trial_outputs(folder, keep, r.model, t, meta, probs=r.test_probs)
        out.append({**r.metrics, "artifacts": written})
    return out


def _stacked(tasks: list[Task], split: str, device) -> tuple:
    """(x, y) of ``split``: the first task's when every task holds the same tensors, else
    stacked per trial (T, N, ...) / (T, N); ``UserError`` when the sizes differ."""
    xs = [getattr(t, f"x_{split}") for t in tasks]
    ys = [getattr(t, f"y_{split}") for t in tasks]
    if all(x is xs[0] or (x.shape == xs[0].shape and torch.equal(x, xs[0])
                          and torch.equal(y, ys[0])) for x, y in zip(xs, ys)):
        return xs[0].to(device), ys[0].to(device)
    if any(x.shape != xs[0].shape for x in xs):
        raise UserError(f"fused trials' {split} splits of sizes "
                        f"{sorted({len(y) for y in ys})} are invalid: allowed is one size; "
                        "run them with run_trial")
    return torch.stack(xs).to(device), torch.stack(ys).to(device)


def _transfer_many(sources: list[BlockModel], tasks: list[Task], trials: list[FusedTrial],
                   cfg: TrainConfig, keep_probs: bool) -> list[TransferResult]:
    """``transfer_fused`` with one source and one task per trial."""
    device = cfg.resolved_device()
    data = [v for split in ("train", "val", "test") for v in _stacked(tasks, split, device)]
    results = fit_fused(sources, trials[0].protocol, trials, *data, tasks[0].num_classes,
                        cfg, keep_probs=keep_probs)
    return [TransferResult(_model_of(s, t.num_classes, r.state), r.metrics, r.history,
                           {**r.config, "task": str(t.spec), "classes": list(t.classes)},
                           r.test_probs) for s, t, r in zip(sources, tasks, results)]
