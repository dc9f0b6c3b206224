"""Scores of a model on a task: one frozen forward pass over the task's TRAIN split.

Only the labelled data a user has (the train split) is read; validation and test never are.
Features at a depth are the output of the first ``depth`` blocks in eval mode (BatchNorm
folded, as ``transferlab.features`` computes them):

* ``depth=None`` (default): the head's input, i.e. after the last block, flattened;
* an intermediate depth with a 4-D output (N, C, H, W): global-average-pooled to (N, C),
  so that dims stay manageable (conv1 of a 32 x 32 convnet is 16 x 16 x 16 = 4,096 values
  flattened; pooled it is 16) -- an intermediate 2-D output is used as is;
* a ``Hidden`` output of a text model: the mean over its unmasked positions.

LEEP and NCE read the source head instead: its softmax (or argmax) on the target inputs.
The head's label space may differ from the target's (that is the point), but the head must
be the one the source was trained with: a checkpoint saved with a fresh head says nothing.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from transferlab.errors import UserError, bad_value
from transferlab.features import prefix_features
from transferlab.transferability.registry import get_estimator


def _pool(h, depth: int, num_blocks: int) -> torch.Tensor:
    """(N, ...) block output -> (N, dim) features (see the module docstring)."""
    from transferlab.inputs import Hidden

    if isinstance(h, Hidden):
        mask = h.mask.to(h.hidden.dtype).unsqueeze(-1)
        return (h.hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    if h.dim() == 4 and depth < num_blocks:
        return h.mean(dim=(2, 3))
    return h.flatten(1)


def _check_depth(model, depth: int | None) -> int:
    n = model.num_blocks
    if depth is None:
        return n
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= n:
        raise bad_value("depth", depth, f"1..{n} for this model (blocks "
                        f"{', '.join(model.block_names)}) or None for the head's input",
                        "pass a smaller depth")
    return depth


@torch.no_grad()
def extract_features(model, task, depths: list[int | None] | int | None = None
                     ) -> dict[int, torch.Tensor]:
    """Train-split features (n_train, dim) at each depth, in ONE pass through the blocks.

    Each depth continues from the previous one's output (``prefix_features(..., start=)``),
    so ranking every depth costs one forward pass, not L.
    """
    wanted = sorted({_check_depth(model, d) for d in
                     (depths if isinstance(depths, (list, tuple)) else [depths])})
    out, h, at = {}, task.x_train, 0
    for d in wanted:
        h = prefix_features(model, h, d, start=at)
        at = d
        out[d] = _pool(h, d, model.num_blocks)
    return out


def _head_ok(model) -> None:
    if model.num_classes < 1:
        raise UserError("the model has no classifier head (no Linear layer in model.head): "
                        "LEEP and NCE read the source head's predictions; use logme, hscore, "
                        "reg_hscore or transrate, which read features")


@torch.no_grad()
def source_probabilities(model, task, features: torch.Tensor | None = None) -> torch.Tensor:
    """(n_train, Z) softmax of the model's own (source) head on the task's train inputs.

    ``features``: the last block's flattened output if already computed.
    """
    from transferlab.inputs import Hidden
    from transferlab.models.heads import PooledHead, head_linear

    _head_ok(model)
    if features is None:
        features = extract_features(model, task, None)[model.num_blocks]
    head = model.head
    was = head.training
    head.eval()
    try:
        if isinstance(features, Hidden):  # a text encoder's last block: its head pools it
            logits = head(features)
        elif isinstance(head, PooledHead) and features.dim() == 2:  # pooled already
            logits = head_linear(model)(features.float())
        else:
            logits = head(features.float())
    finally:
        head.train(was)
    return torch.softmax(logits.double(), dim=1)


def score(model, task, metric: str, depth: int | None = None) -> float:
    """One estimator's score of ``model`` (a BlockModel) for ``task``'s train split.

    Args:
        metric: a name in ``ESTIMATORS`` (logme, leep, nce, hscore, reg_hscore, transrate).
        depth: for feature estimators, the number of blocks (None: the head's input);
            LEEP and NCE read the source head and take no depth.
    """
    return score_all(model, task, [metric], [depth])[0]["score"]


def score_all(model, task, metrics: list[str], depths: list[int | None] | None = None
              ) -> list[dict]:
    """Every (metric, depth) pair from one forward pass: a list of dicts with keys metric,
    depth, score, time_s (the estimator) and feature_time_s (the shared forward pass)."""
    ests = [get_estimator(m) for m in metrics]
    depths = list(depths) if depths else [None]
    if any(e.reads != "features" for e in ests) and depths != [None]:
        raise bad_value("depth", depths, "None for leep and nce (they read the source head)",
                        "score them without a depth")
    if any(e.reads != "features" for e in ests):
        _head_ok(model)
        depths_needed = [None]
    else:
        depths_needed = depths
    labels = task.y_train.cpu().numpy()
    t0 = time.perf_counter()
    feats = extract_features(model, task, depths_needed)
    probs = (source_probabilities(model, task, feats[model.num_blocks])
             if any(e.reads != "features" for e in ests) else None)
    feature_time = time.perf_counter() - t0
    rows = []
    for e in ests:
        for d in (depths if e.reads == "features" else [None]):
            t1 = time.perf_counter()
            if e.reads == "features":
                x = feats[_check_depth(model, d)]
            else:
                x = probs if e.reads == "probs" else probs.argmax(1)
            value = e.fn(x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x),
                         labels)
            rows.append({"metric": e.name, "depth": _check_depth(model, d), "score": value,
                         "time_s": time.perf_counter() - t1, "feature_time_s": feature_time})
    return rows
