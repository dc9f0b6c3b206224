"""Episodes in batches: train E support sets of one protocol at once.

A few-shot fit is tiny (10-100 images, full batch), so a plain per-episode loop spends its
time in per-step overhead (Python, optimiser, module calls, a model copy per episode), not
arithmetic. Here the E episodes' trainable parameters and BatchNorm buffers are stacked
along a leading episode dimension and one step of all E is one call of
``torch.func.vmap(functional_call(model, ...))`` and one backward:

* BatchNorm is handled per episode: under ``vmap`` each episode's batch statistics are its
  own (the batch dimension is inside the vmapped function), and the running statistics are
  stacked buffers (E, C) updated in place per episode; frozen-statistics modules stay in
  eval mode as in the plain loop;
* the loss is the sum of the episodes' mean cross-entropies, so the gradient of each
  stacked slice is exactly that episode's gradient;
* the optimiser is the plain loop's SGD (momentum, Nesterov when momentum > 0, weight decay
  on 2+-dimensional tensors only, per-group lr scale, the loop's schedule) written on the
  stacked tensors;
* the frozen prefix (leading blocks with nothing to train) runs once for all episodes, and
  its output on the shared test split once for all episodes (and, with ``prefix_cache``,
  once for every protocol of the same depth).

Scope (what the study's setting needs): SGD protocols whose fit is the training loop
(``bn-only``, ``conv-only``, ``finetune``, ``head-only``, ``freeze:n``, their
``-frozen-stats`` variants), full-batch steps (``batch_size`` >= the support set), no
validation split (the last step is the result), no augmentation. Anything else is a
``UserError`` naming the plain path (``transferlab.transfer``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.errors import UserError
from transferlab.models.base import BlockModel
from transferlab.protocols import ProtocolConfig, get_protocol, resolve_train
from transferlab.train import TrainConfig
from transferlab.train.loop import _schedule, set_train_mode


class _From(nn.Module):
    """``model.forward_from(x, start)`` as a module forward (for ``functional_call``)."""

    def __init__(self, model: BlockModel, start: int):
        super().__init__()
        self.m, self.start = model, start

    def forward(self, x):
        return self.m.forward_from(x, self.start)


@dataclass
class EpisodeResult:
    """What ``train_episodes`` returns: per-episode metrics and the trained states."""

    test_acc: list[float]            # (E,)
    test_nll: list[float]
    states: list[dict]               # E state dicts of the full model (CPU)
    steps: int


def _check(proto, cfg: TrainConfig, n: int) -> None:
    c = type(proto.config)
    if c.fit is not ProtocolConfig.fit or c.loss_term is not ProtocolConfig.loss_term \
            or c.after_step is not ProtocolConfig.after_step:
        raise UserError(f"protocol={proto.name!r} has its own fit or step hooks: allowed in the "
                        "episode engine are SGD-loop protocols (bn-only, conv-only, finetune, "
                        "head-only, freeze:n, -frozen-stats); use transferlab.transfer")
    if cfg.optimizer != "sgd" or cfg.augment or cfg.max_grad_norm:
        raise UserError("the episode engine runs plain SGD without augmentation or clipping: "
                        "allowed is optimizer='sgd', crop_padding=0, hflip=False, "
                        "max_grad_norm=None; use transferlab.transfer otherwise")
    if cfg.batch_size < n:
        raise UserError(f"batch_size={cfg.batch_size} is invalid for the episode engine: "
                        f"allowed is >= the support set ({n}, full-batch steps); raise it")


def _prefix(model: BlockModel, x: torch.Tensor, depth: int, chunk: int = 512) -> torch.Tensor:
    """Eval-mode output of the first ``depth`` blocks, in chunks: (N, ...)."""
    if depth == 0:
        return x
    with torch.no_grad():
        was = model.training
        model.eval()
        out = torch.cat([model.features(x[i:i + chunk], depth) for i in range(0, len(x), chunk)])
        model.train(was)
    return out


def train_episodes(source: BlockModel, protocol: str, x_train: torch.Tensor,
                   y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   num_classes: int, train: TrainConfig | dict | None = None, seed: int = 0,
                   prefix_cache: dict | None = None, eval_chunk: int = 500) -> EpisodeResult:
    """Train ``protocol`` on E episodes at once; evaluate each on the shared test split.

    Args:
        source: the pretrained model (not modified).
        x_train: (E, N, ...) support sets (one per episode, same N); y_train: (E, N) int64.
        x_test: (M, ...) the target's test inputs, shared by the episodes; y_test: (M,).
        train: the plain loop's TrainConfig fields (epochs = full-batch steps).
        seed: the head's initialisation seed, as ``transfer(..., seed=seed)`` draws it.
        prefix_cache: a dict reused across calls: the test split's frozen-prefix features
            by depth (computed once per depth for every protocol).
    Returns: an ``EpisodeResult`` (test accuracy and NLL per episode, trained states).
    """
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train or {})
    proto = get_protocol(protocol)
    cfg = resolve_train(proto.config, cfg)
    e_count, n = int(x_train.shape[0]), int(x_train.shape[1])
    _check(proto, cfg, n)
    model = copy.deepcopy(source).cpu()
    plan = proto.config.plan(model, num_classes, torch.Generator().manual_seed(seed),
                             lr_mult=cfg.lr_mult, layer_decay=cfg.layer_decay)
    start = plan.frozen_prefix
    wrapper = _From(model, start)
    # Which tensors train, at which lr scale and weight decay (build_optimizer's rule).
    scale, decay = {}, {}
    ids = {id(p): name for name, p in wrapper.named_parameters()}
    for g in plan.groups:
        for p in g["params"]:
            if p.requires_grad:
                scale[ids[id(p)]] = g["lr_scale"]
                decay[ids[id(p)]] = g.get("weight_decay", cfg.weight_decay) if p.dim() > 1 \
                    else 0.0
    names = list(scale)
    fixed = {k: v.detach() for k, v in wrapper.named_parameters() if k not in scale}
    params = {k: dict(wrapper.named_parameters())[k].detach().unsqueeze(0)
              .repeat(e_count, *[1] * dict(wrapper.named_parameters())[k].dim()).clone()
              .requires_grad_(True) for k in names}
    buffers = {k: v.detach().unsqueeze(0).repeat(e_count, *[1] * v.dim()).clone()
               for k, v in wrapper.named_buffers()}
    h_train = _prefix(model, x_train.reshape(e_count * n, *x_train.shape[2:]), start)
    h_train = h_train.reshape(e_count, n, *h_train.shape[1:])

    def logits_of(p, b, x):
        return torch.func.functional_call(wrapper, {**fixed, **p, **b}, (x,))

    batched = torch.func.vmap(logits_of, in_dims=(0, 0, 0))
    momentum = {k: None for k in names}
    total = cfg.epochs
    for step in range(total):
        set_train_mode(model, plan.frozen_modules)
        logits = batched(params, buffers, h_train)                    # (E, N, C)
        loss = F.cross_entropy(logits.reshape(e_count * n, -1).float(),
                               y_train.reshape(-1), reduction="sum") / n
        grads = torch.autograd.grad(loss, [params[k] for k in names])
        lr = cfg.lr * _schedule(step, total, cfg.schedule)
        with torch.no_grad():
            for k, g in zip(names, grads):
                p = params[k]
                if decay[k]:
                    g = g.add(p, alpha=decay[k])
                if cfg.momentum:
                    buf = momentum[k]
                    buf = g.clone() if buf is None else buf.mul_(cfg.momentum).add_(g)
                    momentum[k] = buf
                    g = g.add(buf, alpha=cfg.momentum)  # Nesterov, as the loop's SGD
                p.sub_(g, alpha=lr * scale[k])
    model.eval()
    key = (start, id(source), x_test.data_ptr(), len(x_test))
    if prefix_cache is not None and key in prefix_cache:
        h_test = prefix_cache[key]
    else:
        h_test = _prefix(model, x_test, start)
        if prefix_cache is not None:
            prefix_cache[key] = h_test
    evaluate = torch.func.vmap(logits_of, in_dims=(0, 0, None))
    correct = torch.zeros(e_count, dtype=torch.long)
    nll = torch.zeros(e_count, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(y_test), eval_chunk):
            out = evaluate(params, buffers, h_test[i:i + eval_chunk]).float()  # (E, m, C)
            yb = y_test[i:i + eval_chunk]
            correct += (out.argmax(-1) == yb).sum(1)
            nll += F.cross_entropy(out.transpose(1, 2), yb.expand(e_count, -1),
                                   reduction="none").sum(1).double()
    m = len(y_test)
    states = []
    prefix = "m."
    for e in range(e_count):
        sd = {k[len(prefix):]: v.detach() for k, v in fixed.items()}
        sd.update({k[len(prefix):]: params[k][e].detach().clone() for k in names})
        sd.update({k[len(prefix):]: buffers[k][e].clone() for k in buffers})
        states.append(sd)
    acc = (correct.double() / m).tolist()
    return EpisodeResult(acc, (nll / m).tolist(), states, total)


__all__ = ["train_episodes", "EpisodeResult"]
