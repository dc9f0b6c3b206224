"""Episodes in batches: train E support sets of one protocol at once.

A few-shot fit is tiny (10-100 images), so a plain per-episode loop spends its time in
per-step overhead (Python, optimiser, module calls, a model copy per episode), not
arithmetic. ``train_episodes`` runs the E episodes as one fused job of the general fused
trainer (``transferlab.train.fused.fit_fused``): the episodes' trainable parameters and
BatchNorm buffers stacked along a leading episode dimension, one step of all E one
``vmap(functional_call(...))`` forward and one backward, the plain loop's optimiser on the
stacked tensors, the frozen prefix run once (and its output on the shared test split once
per depth with ``prefix_cache``). Each episode equals its own ``transfer`` run to float32
rounding (tests/test_fused.py, tests/test_study_fewshot.py).

Everything runs on the device of ``x_train`` (the source is copied there; random draws are
made on CPU generators). Scope: the fused engine's (SGD-loop protocols without step hooks,
no augmentation, tensor inputs); anything else is a ``UserError`` naming the plain path
(``transferlab.transfer``). Minibatches (``batch_size`` < the support set) are shuffled per
episode with the seed's generator, as ``transfer`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from transferlab.models.base import BlockModel
from transferlab.protocols import get_protocol
from transferlab.train import TrainConfig
from transferlab.train.fused import FusedTrial, fit_fused


@dataclass
class EpisodeResult:
    """What ``train_episodes`` returns: per-episode metrics and the trained states."""

    test_acc: list[float]            # (E,)
    test_nll: list[float]
    states: list[dict]               # E state dicts of the full model (CPU)
    steps: int                       # optimiser steps per episode


def train_episodes(source: BlockModel, protocol: str, x_train: torch.Tensor,
                   y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   num_classes: int, train: TrainConfig | dict | None = None, seed: int = 0,
                   prefix_cache: dict | None = None, eval_chunk: int = 500,
                   x_val: torch.Tensor | None = None,
                   y_val: torch.Tensor | None = None) -> EpisodeResult:
    """Train ``protocol`` on E episodes at once; evaluate each on the shared test split.

    Args:
        source: the pretrained model (not modified; on any device).
        x_train: (E, N, ...) support sets (one per episode, same N); y_train: (E, N) int64.
            The episodes train on this tensor's device; every other tensor must be there.
        x_test: (M, ...) the target's test inputs, shared by the episodes; y_test: (M,).
        train: the plain loop's TrainConfig fields (with batch_size >= N, epochs = steps).
        seed: the head's initialisation and batch-order seed, as ``transfer(seed=seed)``.
        prefix_cache: a dict reused across calls: the test split's frozen-prefix features
            by depth (computed once per depth for every protocol).
        x_val, y_val: optional per-episode validation sets (E, V, ...) / (E, V): the best
            epoch on each episode's validation is restored, as ``transfer`` does.
    Returns: an ``EpisodeResult`` (test accuracy and NLL per episode, trained states).
    """
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train or {})
    e_count, n = int(x_train.shape[0]), int(x_train.shape[1])
    res = fit_fused(source, get_protocol(protocol), [FusedTrial(seed=seed)] * e_count,
                    x_train, y_train, x_val, y_val, x_test, y_test, num_classes, cfg,
                    prefix_cache=prefix_cache, eval_chunk=eval_chunk)
    steps = -(-n // cfg.batch_size) * cfg.epochs if n else 0
    return EpisodeResult([r.metrics["test_acc"] for r in res],
                         [r.metrics["test_nll"] for r in res], [r.state for r in res], steps)


__all__ = ["train_episodes", "EpisodeResult"]
