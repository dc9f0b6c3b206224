"""The public entry points: ``pretrain``, ``transfer`` and the sweep's ``run_trial``.

>>> from transferlab import make_task, pretrain, transfer
>>> src = pretrain(make_task("digits:classes=0-4:size=16"), arch="convnet").model
>>> res = transfer(src, make_task("digits:classes=5-9:size=16"), "freeze:3")
>>> res.metrics["test_acc"]   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from transferlab.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
from transferlab.data import Task, make_task
from transferlab.data.resident import on_device
from transferlab.errors import UserError
from transferlab.features import FeatureCache, compute_split_features
from transferlab.models import BlockModel, build_model
from transferlab.models.compat import check_runs_on
from transferlab.models.standardize import fit_input_standardizers
from transferlab.protocols import Plan, Protocol, ProtocolConfig, get_protocol, resolve_train
from transferlab.train import TrainConfig, evaluate, fit
from transferlab.train.loop import to_layout

__all__ = ["TransferResult", "checkpoint_sha256", "pretrain", "pretrain_checkpoint",
           "run_trial", "transfer"]


@dataclass
class TransferResult:
    """A trained model with its metrics, per-epoch history and resolved configuration."""

    model: BlockModel
    metrics: dict
    history: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    # (n_test, C) float32 softmax on the test split, as scored for test_acc (kept trials
    # store it instead of running the test set again); None without a test split
    test_probs: torch.Tensor | None = field(default=None, repr=False)


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _param_counts(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters()) - trainable


def _step_hooks(config: ProtocolConfig, plan: Plan) -> dict:
    """The protocol's per-step hooks for ``fit``, only those it overrides (no per-step
    call otherwise)."""
    hooks = {}
    if type(config).loss_term is not ProtocolConfig.loss_term:
        hooks["loss_term"] = lambda _model: config.loss_term(plan)
    if type(config).after_step is not ProtocolConfig.after_step:
        hooks["after_step"] = lambda _model: config.after_step(plan)
    return hooks


def _non_finite(model: nn.Module) -> str:
    """The first parameter or buffer holding NaN/inf (its name), or '' if all are finite."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return ""


@contextlib.contextmanager
def _layout_hint(cfg: TrainConfig):
    """Turn the error of a ``.view()`` on channels_last activations into one naming the fix."""
    try:
        yield
    except RuntimeError as exc:
        if cfg.channels_last and "view size is not compatible" in str(exc):
            raise UserError(
                "channels_last=True: a block of this model calls .view() on its activations, "
                "which fails in the channels_last layout; allowed are modules that use "
                ".reshape()/.flatten(), or pass train={'channels_last': False}") from exc
        raise


def transfer(source: BlockModel, task: Task, protocol: str | Protocol = "finetune",
             train: TrainConfig | dict | None = None, seed: int = 0,
             feature_cache: FeatureCache | None = None, use_cache: bool = True,
             progress: bool = True) -> TransferResult:
    """Transfer ``source`` to ``task`` with ``protocol``; the source is not modified.

    Args:
        source: the pretrained BlockModel (copied, never changed).
        task: the target task (tensors on any device; moved to the training device).
        protocol: a registered name such as ``"freeze:3"`` or a ``Protocol``.
        train: the training budget; ``TrainConfig`` or a dict of its fields.
        feature_cache: an on-disk cache of frozen-prefix features (shared by sweeps).
        use_cache: compute frozen-prefix features once (False forces the full forward,
            for checking that caching changes nothing).
    Returns: a ``TransferResult`` whose ``metrics`` has test_acc, test_nll, val_acc,
        trainable/frozen parameter counts, train time, samples/s, outcome and reason.
    """
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train)
    proto = get_protocol(protocol)
    cfg = resolve_train(proto.config, cfg)  # lr_mult=None -> the protocol's default
    device = cfg.resolved_device()
    generator = _seed_everything(seed)
    model = copy.deepcopy(source).to(device)
    # An input Standardize not yet fitted (a new mlp on vectors) takes the training split's
    # statistics now, before any feature is computed through it; fitted ones are kept.
    fit_input_standardizers(model, task.x_train)
    first = (task.x_train if len(task.y_train) else task.x_test)[:1].to(device)
    check_runs_on(model, first, "source", str(task.spec))  # a size slip: one line, no traceback
    plan: Plan = proto.config.plan(model, task.num_classes, generator,
                                   lr_mult=cfg.lr_mult, layer_decay=cfg.layer_decay)
    if cfg.channels_last:  # only 4-D (conv) weights change layout
        model = model.to(memory_format=torch.channels_last)
    task = on_device(task, device)  # moved from the host once per process (data/resident.py)
    start = plan.frozen_prefix if (use_cache and not cfg.augment) \
        or type(proto.config).needs_features else 0
    with _layout_hint(cfg):
        return _transfer(model, task, proto, plan, cfg, generator, start, feature_cache,
                         progress, seed)


def _transfer(model: BlockModel, task: Task, proto: Protocol, plan: Plan, cfg: TrainConfig,
              generator: torch.Generator, start: int, feature_cache: FeatureCache | None,
              progress: bool, seed: int) -> TransferResult:
    t0 = time.perf_counter()
    if start:
        feats = (feature_cache.get_or_compute(model, task, start, cfg.channels_last)
                 if feature_cache else compute_split_features(model, task, start,
                                                              cfg.channels_last))
    else:
        feats = {"train": task.x_train, "val": task.x_val, "test": task.x_test}
    # One layout change for the whole split here, not one copy per batch in the loop.
    feats = {split: to_layout(v, cfg) for split, v in feats.items()}
    cache_time = time.perf_counter() - t0
    t1 = time.perf_counter()
    extra = proto.config.fit(plan, feats, task, cfg, generator=generator, progress=progress)
    fit_res = None
    if extra is not None:  # the protocol's own fit (e.g. the linear probe's L-BFGS)
        train_time = time.perf_counter() - t1
        sps = len(task.y_train) / max(train_time, 1e-9)
    else:
        extra = {}
        fit_res = fit(model, feats["train"], task.y_train, feats["val"], task.y_val, cfg,
                      plan.groups, start=start, frozen_modules=plan.frozen_modules,
                      generator=generator, progress=progress, desc=proto.name,
                      **_step_hooks(proto.config, plan))
        train_time, sps = fit_res.train_time_s, fit_res.samples_per_s
    # The test split is scored once, through the folded blocks (evaluate's ``fold``); its
    # time is recorded apart from training's (a benchmark of transfer cost can leave it out).
    t2 = time.perf_counter()
    test_acc, test_nll, test_probs = evaluate(model, feats["test"], task.y_test, start,
                                              cfg=cfg, return_probs=True, fold=True)
    test_time = time.perf_counter() - t2
    # Not measured without a validation split (k < 4 shots): None, never a number.
    val_acc = evaluate(model, feats["val"], task.y_val, start, cfg=cfg)[0] \
        if len(task.y_val) else None
    trainable, frozen = _param_counts(model)
    outcome, reason = (fit_res.outcome, fit_res.reason) if fit_res else ("ok", "")
    if outcome == "ok":  # a finite loss is not enough: the result itself must be finite
        bad = _non_finite(model)
        # (a task without a test split has test_nll NaN by definition: not a divergence)
        if bad or (len(task.y_test) and not math.isfinite(test_nll)):
            outcome = "diverged"
            reason = (f"non-finite weights in {bad}" if bad
                      else f"test NLL is {test_nll}") + " after training; lower the " \
                f"learning rate (lr={cfg.lr}) or set max_grad_norm"
    metrics = {
        "test_acc": test_acc, "test_nll": test_nll, "val_acc": val_acc,
        "trainable_params": trainable, "frozen_params": frozen,
        "train_time_s": train_time, "feature_time_s": cache_time, "samples_per_s": sps,
        "test_time_s": test_time,
        "epochs_run": fit_res.epochs_run if fit_res else 0,
        "steps": fit_res.steps if fit_res else 0,  # optimiser steps (0: a direct solver)
        "best_epoch": fit_res.best_epoch if fit_res else 0,
        "outcome": outcome, "reason": reason,
        "cached_prefix": start,
        # which cached depth the prefix features were extended from (None: computed here)
        "features_from_depth": feature_cache.last_start if (start and feature_cache) else None,
        "depth": plan.depth, "reinitialised": plan.reinitialised,
        **effective_numerics(cfg, task.device),
        **extra,
    }
    model.requires_grad_(True)
    config = {"protocol": proto.name, "protocol_config": proto.config.to_dict(),
              "train": cfg.to_dict(), "seed": seed, "task": str(task.spec),
              "classes": list(task.classes)}
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    return TransferResult(model, metrics,
                          fit_res.history if fit_res else [], config, test_probs)


def effective_numerics(cfg: TrainConfig, device: torch.device) -> dict:
    """What the run's numbers were computed in, whatever the config asked: ``bf16`` only
    autocasts on CUDA (``precision``), and 4-D activations are NHWC when ``channels_last``
    (``memory_format``). Recorded with every trial's metrics."""
    return {"precision": "bf16-autocast" if device.type == "cuda" and cfg.bf16 else "float32",
            "memory_format": "channels_last" if cfg.channels_last else "contiguous"}


def pretrain(task: Task, arch: str = "convnet", train: TrainConfig | dict | None = None,
             seed: int = 0, progress: bool = True, init_seed: int | None = None,
             **arch_kwargs) -> TransferResult:
    """Train a source model from scratch on ``task`` (seeded initialisation).

    ``seed`` draws the initial weights and the training's randomness (batch order,
    augmentation, dropout); ``init_seed``, when given, draws the initial weights instead, so
    that models pretrained with one ``init_seed`` and different ``seed`` start from the same
    encoder (an ensemble whose members share an initialisation; the training loop draws the
    head with ``seed``).
    """
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train)
    _seed_everything(seed if init_seed is None else init_seed)
    model = build_model(arch, task.num_classes, **task.model_kwargs, **arch_kwargs)
    # "freeze:0" (nothing frozen, lr_mult 1) trains every parameter at the base lr from the
    # seeded init; "finetune" would slow the backbone to 0.1 x lr.
    res = transfer(model, task, "freeze:0", cfg, seed=seed, progress=progress)
    res.config.update({"arch": arch, "arch_kwargs": arch_kwargs, "protocol": "pretrain"})
    return res


def checkpoint_meta(res: TransferResult, **more) -> dict:
    """The sidecar contents for a trained model."""
    return {"task": res.config["task"], "classes": res.config["classes"],
            "protocol": res.config["protocol"], "seed": res.config["seed"],
            "config": res.config, "metrics": res.metrics, "history": res.history, **more}


def pretrain_checkpoint(task: str, out_path: str, arch: str = "convnet",
                        arch_kwargs: dict | None = None, train: dict | None = None,
                        seed: int = 0, data_dir: str | None = None,
                        progress: bool = False, save_diverged: bool = True,
                        init_seed: int | None = None) -> dict:
    """Pretrain on the task string ``task`` and save a checkpoint; returns the metrics.

    ``train={"epochs": 0}`` saves the seeded random initialisation (a random-features
    source for controls). ``save_diverged=False`` saves nothing when the training diverged
    (``metrics["outcome"] == "diverged"``): the sweep must not transfer from NaN weights.
    """
    t = make_task(task, data_dir=data_dir)
    res = pretrain(t, arch=arch, train=train, seed=seed, progress=progress,
                   init_seed=init_seed, **(arch_kwargs or {}))
    if save_diverged or res.metrics.get("outcome") != "diverged":
        save_checkpoint(out_path, res.model, checkpoint_meta(res))
    return res.metrics


def run_trial(cfg: dict, feature_cache_dir: str | None = None, progress: bool = False,
              keep: tuple[str, ...] | list[str] = (), artifacts_dir: str | None = None) -> dict:
    """Run one sweep trial from its resolved config dict; returns the metrics dict.

    ``cfg`` keys: source (checkpoint path or None), arch and arch_kwargs (when source is
    None), task, protocol, seed, train, data_dir; optionally task_fingerprint (the target
    data's ``Task.fingerprint`` seen when the sweep was planned: a mismatch raises
    ``UserError`` instead of training on other data than the key says) and key_version.
    ``keep`` ("weights", "probs"): write those outputs into ``artifacts_dir`` (see
    ``transferlab.sweep.artifacts``); the metrics dict then has ``"artifacts": {kind: path}``.
    See docs/ARCHITECTURE.md.
    """
    allowed = {"source", "arch", "arch_kwargs", "task", "protocol", "seed", "train", "data_dir",
               "source_sha256", "task_fingerprint", "key_version"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise UserError(f"trial config keys {unknown} are invalid: allowed are {sorted(allowed)}")
    if "task" not in cfg or "protocol" not in cfg:
        raise UserError("trial config needs 'task' and 'protocol'; add them to the spec")
    if keep and not artifacts_dir:
        raise UserError(f"keep={list(keep)} needs artifacts_dir: pass the folder to write to")
    task = make_task(cfg["task"], data_dir=cfg.get("data_dir"), progress=progress)
    if cfg.get("task_fingerprint") and cfg["task_fingerprint"] != task.fingerprint:
        raise UserError(f"task={cfg['task']!r}: its data changed since the sweep was planned "
                        f"(fingerprint {task.fingerprint[:12]}…, the trial key has "
                        f"{cfg['task_fingerprint'][:12]}…); allowed is the data the key names; "
                        "run the sweep again to plan it on the current data")
    if cfg.get("source"):
        source, _ = load_checkpoint(cfg["source"])
    else:
        if get_protocol(cfg["protocol"]).family != "scratch":
            raise UserError(f"protocol={cfg['protocol']!r} needs a source checkpoint; "
                            "set 'source' or use protocol 'scratch'")
        _seed_everything(int(cfg.get("seed", 0)))
        source = build_model(cfg.get("arch", "convnet"), task.num_classes, **task.model_kwargs,
                             **(cfg.get("arch_kwargs") or {}))
    cache = FeatureCache(feature_cache_dir) if feature_cache_dir else None
    res = transfer(source, task, cfg["protocol"], cfg.get("train"), seed=int(cfg.get("seed", 0)),
                   feature_cache=cache, progress=progress)
    if not keep:
        return res.metrics
    from transferlab.sweep.artifacts import save_trial_outputs

    meta = checkpoint_meta(res, trial_config=cfg, task_fingerprint=task.fingerprint)
    written = save_trial_outputs(artifacts_dir, keep, res.model, task, meta,
                                 probs=res.test_probs)
    return {**res.metrics, "artifacts": written}
