"""The one training loop every protocol, sweep and study uses.

It trains ``model.forward_from(x, start)`` so that the same loop serves full inputs
(``start=0``) and cached frozen-prefix activations (``start=n``). Data lives in memory on
the training device and is indexed there (no DataLoader workers).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from transferlab._allocator import keep_freed_memory
from transferlab.inputs import Batched
from transferlab.models.base import BlockModel
from transferlab.train.config import TrainConfig


@dataclass
class FitResult:
    """What happened in ``fit``: per-epoch history, the best epoch and the outcome."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_acc: float = float("nan")
    epochs_run: int = 0
    steps: int = 0  # optimiser steps taken
    outcome: str = "ok"  # "ok" | "diverged"
    reason: str = ""
    train_time_s: float = 0.0
    samples_per_s: float = 0.0


def _autocast(device: torch.device, cfg: TrainConfig):
    if device.type == "cuda" and cfg.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_layout(x: Batched, cfg: TrainConfig | None) -> Batched:
    """``x`` in the memory layout ``cfg`` asks for: channels_last for 4-D (N, C, H, W).

    A no-op when ``x`` already has that layout; other ranks and TensorTuples (token ids,
    Hidden states) are returned as they are.
    """
    if cfg is not None and cfg.channels_last and isinstance(x, torch.Tensor) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def evaluate(model: BlockModel, x: Batched, y: torch.Tensor, start: int = 0,
             batch_size: int = 1024, cfg: TrainConfig | None = None,
             return_probs: bool = False, fold: bool = False) -> tuple:
    """Accuracy and mean negative log-likelihood of ``model`` on (x, y).

    x: (N, ...) inputs of block ``start`` (a tensor, or TokenInputs / Hidden, trimmed per
    batch to the longest sequence); y: (N,) int64. Logits are scored in float32.
    ``return_probs``: also the softmax, (N, C) float32 on the CPU in x's order, so that a
    trial that keeps its test probabilities need not run the test set twice.
    ``fold``: a tensor ``x`` goes through the blocks' folded inference form
    (``features.prefix_features``: BatchNorm folded into convs, 2x2 pools as strided maxima,
    in float32) and then the head: the same eval-mode function to float rounding, 1.2x
    faster on CIFAR-10's 4,000 test images through the ensembles' convnet (CPU). Worth it
    for a large set scored once (a trial's test split), not for a small one scored every
    epoch (folding copies the blocks).
    """
    from transferlab.data.batching import length_order, trim_padding

    keep_freed_memory()
    if len(y) == 0:
        return (float("nan"), float("nan")) + ((None,) if return_probs else ())
    # Only BlockModel's own forward_from is "the blocks, then the head"; a model that
    # overrides it (layer-mix reads cached per-layer features) is scored its own way.
    if fold and isinstance(x, torch.Tensor) and start < model.num_blocks and \
            type(model).forward_from is BlockModel.forward_from:
        from transferlab.features import prefix_features

        channels_last = cfg.channels_last if cfg is not None else True
        x = prefix_features(model, x, model.num_blocks, start=start,
                            channels_last=channels_last)
        start, cfg = model.num_blocks, None  # the head's input now; no autocast for the head
    was_training = model.training
    model.eval()
    correct, nll, probs = 0, 0.0, []
    ctx = _autocast(x.device, cfg) if cfg is not None else contextlib.nullcontext()
    order = length_order(x)  # token sequences: batches of similar length, little padding
    for i in range(0, len(y), batch_size):
        if order is None:
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        else:
            idx = order[i:i + batch_size].to(y.device)
            xb, yb = x[idx], y[idx]
        xb = to_layout(trim_padding(xb), cfg)
        with ctx:
            logits = model.forward_from(xb, start)
        logits = logits.float()
        correct += (logits.argmax(1) == yb).sum().item()
        nll += F.cross_entropy(logits, yb, reduction="sum").item()
        if return_probs:
            probs.append(torch.softmax(logits, dim=1).cpu())
    model.train(was_training)
    if not return_probs:
        return correct / len(y), nll / len(y)
    p = torch.cat(probs)
    if order is not None:  # back to x's order
        p = p[torch.argsort(order.cpu())]
    return correct / len(y), nll / len(y), p.contiguous()


def build_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """One optimiser param group per (lr scale, decay/no-decay) pair.

    ``groups``: dicts with ``params``, ``lr_scale`` and optionally ``weight_decay`` (a
    protocol's own, e.g. 0 for l2sp whose penalty replaces it; default cfg.weight_decay).
    Weight decay applies to tensors with 2+ dimensions only: decaying BatchNorm scales
    and biases hurts small-data transfer.
    """
    param_groups = []
    for g in groups:
        decay = [p for p in g["params"] if p.requires_grad and p.dim() > 1]
        no_decay = [p for p in g["params"] if p.requires_grad and p.dim() <= 1]
        for ps, wd in ((decay, g.get("weight_decay", cfg.weight_decay)), (no_decay, 0.0)):
            if ps:
                param_groups.append({"params": ps, "lr": cfg.lr * g["lr_scale"],
                                     "weight_decay": wd, "name": g.get("name", "")})
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr)
    return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.momentum > 0)


_NOTICED: set[tuple[int, int, int]] = set()


def _notice_raised(cfg: TrainConfig, epochs: int, steps_per_epoch: int) -> None:
    """One line, once per (epochs, steps per epoch, min_steps) in a process: a sweep of
    many seeds on one task says it once, not per trial."""
    key = (cfg.epochs, steps_per_epoch, cfg.min_steps)
    if key in _NOTICED:
        return
    _NOTICED.add(key)
    warnings.warn(f"epochs={cfg.epochs} of {steps_per_epoch} step(s) each is fewer than "
                  f"min_steps={cfg.min_steps} optimiser steps: training {epochs} epochs "
                  "(set min_steps=0 to train exactly `epochs`)", stacklevel=3)


def _schedule(step: int, total: int, kind: str) -> float:
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))
    if kind == "step":
        return 0.01 if step >= 0.75 * total else 0.1 if step >= 0.5 * total else 1.0
    return 1.0


def set_train_mode(model: BlockModel, frozen_modules: list[nn.Module]) -> None:
    """Train mode everywhere except ``frozen_modules`` (BatchNorm statistics frozen there)."""
    model.train()
    for m in frozen_modules:
        m.eval()


def fit(model: BlockModel, x_train: Batched, y_train: torch.Tensor,
        x_val: Batched, y_val: torch.Tensor, cfg: TrainConfig, groups: list[dict],
        start: int = 0, frozen_modules: list[nn.Module] | None = None,
        generator: torch.Generator | None = None, progress: bool = True,
        desc: str = "train",
        loss_term: Callable[[nn.Module], torch.Tensor | None] | None = None,
        after_step: Callable[[nn.Module], None] | None = None) -> FitResult:
    """Train ``model.forward_from(., start)`` with cross-entropy; return a ``FitResult``.

    x_*: (N, ...) inputs to block ``start`` on the training device (tensors, or
    TokenInputs / Hidden for text models); y_*: (N,) int64.
    ``groups``: parameter groups with their ``lr_scale``. The best weights on validation
    accuracy are restored at the end. A non-finite loss stops the run with outcome
    "diverged" and the reason, rather than raising. A protocol's hooks: ``loss_term(model)``
    is added to the cross-entropy that is minimised (the reported train_loss stays the
    cross-entropy), ``after_step(model)`` runs after every optimiser step.
    """
    from transferlab.data import Augment, batches

    keep_freed_memory()  # every batch's activations on warm pages (see _allocator)
    frozen_modules = frozen_modules or []
    result = FitResult()
    if cfg.epochs == 0:
        return result
    opt = build_optimizer(groups, cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    steps_per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    epochs = cfg.epochs_for(len(y_train))  # raised to min_steps optimiser steps
    if epochs != cfg.epochs:
        _notice_raised(cfg, epochs, steps_per_epoch)
    total = steps_per_epoch * epochs
    augment = Augment(crop_padding=cfg.crop_padding, hflip=cfg.hflip) if cfg.augment else None
    trainable = [p for g in opt.param_groups for p in g["params"]]
    best_state, bad_epochs, step, seen = None, 0, 0, 0
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="step", leave=False,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        set_train_mode(model, frozen_modules)
        loss_sum = torch.zeros((), device=x_train.device)
        correct = torch.zeros((), device=x_train.device, dtype=torch.long)
        for xb, yb in batches(x_train, y_train, cfg.batch_size, shuffle=True,
                              generator=generator, augment=augment):
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr * _schedule(step, total, cfg.schedule)
            xb = to_layout(xb, cfg)  # augmentation returns the default layout
            with _autocast(xb.device, cfg):
                logits = model.forward_from(xb, start)
            loss = F.cross_entropy(logits.float(), yb)
            extra = loss_term(model) if loss_term is not None else None
            opt.zero_grad(set_to_none=True)
            (loss if extra is None else loss + extra).backward()
            if cfg.max_grad_norm:
                nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
            opt.step()
            if after_step is not None:
                after_step(model)
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
            step += 1
            seen += len(yb)
            bar.update(1)
        train_loss = loss_sum.item() / len(y_train)  # one sync per epoch
        if not math.isfinite(train_loss):
            result.outcome = "diverged"
            result.reason = (f"training loss became {train_loss} in epoch {epoch + 1}; "
                             f"lower the learning rate (lr={cfg.lr}) or set max_grad_norm")
            result.epochs_run = epoch + 1
            break
        val_acc, val_nll = evaluate(model, x_val, y_val, start, cfg=cfg)
        result.history.append({"epoch": epoch + 1, "train_loss": train_loss,
                               "train_acc": correct.item() / len(y_train),
                               "val_acc": val_acc, "val_nll": val_nll})
        result.epochs_run = epoch + 1
        elapsed = time.perf_counter() - t0
        bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", loss=f"{train_loss:.3f}",
                        val_acc=f"{val_acc:.3f}", sps=f"{seen / max(elapsed, 1e-9):.0f}")
        # With no validation data, the last epoch counts as best.
        improved = (len(y_val) == 0 or math.isnan(result.best_val_acc)
                    or val_acc > result.best_val_acc)
        if improved:
            result.best_val_acc, result.best_epoch, bad_epochs = val_acc, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if cfg.patience is not None and bad_epochs >= cfg.patience:
                break
    bar.close()
    result.steps = step
    result.train_time_s = time.perf_counter() - t0
    result.samples_per_s = seen / max(result.train_time_s, 1e-9)
    if best_state is not None and result.outcome == "ok":
        model.load_state_dict(best_state)
    return result
