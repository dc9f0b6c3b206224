"""``layer-mix``: ELMo's scalar mix of every layer, the encoder frozen (feature-based).

Peters et al. (2018) feed a task model ``gamma * sum_j softmax(s)_j h_j``: a learned
softmax-weighted sum of *every* layer's representation, times a learned scale. Here h_j is
block j's output pooled as the model's head pools (mean over unmasked tokens for text
encoders; flattened for other models), j = 1..B (embeddings included), and the task model
is the linear head. The encoder is frozen: the pooled output of every block is computed once
per task (one forward pass, length-sorted batches) and cached on disk, keyed by the blocks'
weights digest and the task's data fingerprint; then s (B,), gamma and the head are fitted on
the cached (N, B, H) features, by L-BFGS (default: full batch, L2 on the head chosen along
the linear probe's grid on validation, or by cross-validation over train + val when the
validation split is tiny, then refitted on train + val) or by Adam / SGD minibatches
(``mix_optimizer``; ``TrainConfig`` epochs, lr, batch_size; ``TrainConfig.l2`` or
weight_decay as the L2). The penalty is l2/2 (||gamma W||^2 + ||s||^2): on the effective
head, since gamma W is what the logits see (a penalty on W alone lets gamma grow without
bound).

The result is a real model: ``LayerMixModel`` (the copied BlockModel, its class switched in
place, plus ``mix``) whose ``forward(tokens)`` runs the blocks and mixes them, and whose
``forward_from(f, 0)`` also accepts the cached per-layer features (N, B, H). Metrics add
``mix_weights`` (softmax(s), one per block), ``gamma``, ``l2`` and ``layer_feature_time_s``.
Checkpoints of a layer-mix model are not loadable (no rebuildable architecture): use the
metrics, or keep the model in Python.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.errors import UserError, bad_value
from transferlab.inputs import Batched, TensorTuple
from transferlab.models.base import BlockModel
from transferlab.protocols.core import Plan, ProtocolConfig, make_plan
from transferlab.protocols.registry import register_protocol

MIX_OPTIMIZERS = ("lbfgs", "adam", "sgd")
# 2: batches of 64 texts on CPU (features.default_batch_size), not 256
LAYER_FEATURES_VERSION = 2


class ScalarMix(nn.Module):
    """``gamma * sum_j softmax(s)_j f_j``: (N, B, H) -> (N, H)."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.zeros(num_layers))
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.einsum("b,nbh->nh", self.s.softmax(0), f)


def _pool(model: BlockModel, h: Batched) -> torch.Tensor:
    from transferlab.models.pooling import PooledHead, pool_features

    pool = model.head.pool if isinstance(model.head, PooledHead) else "flatten"
    if isinstance(h, TensorTuple) or pool != "flatten":
        return pool_features(h, pool)
    return h.flatten(1)


class LayerMixModel(BlockModel):
    """A BlockModel whose head reads the scalar mix of every block's pooled output."""

    mix: ScalarMix

    def _mixed_logits(self, f: torch.Tensor) -> torch.Tensor:
        from transferlab.models.heads import head_linear

        return head_linear(self)(self.mix(f))

    def forward_from(self, h: Batched, start: int) -> torch.Tensor:
        """``h``: the model's input (start 0), or cached per-layer features (N, B, H)."""
        if start != 0:
            raise bad_value("start", start, "0 for a layer-mix model (it reads every block)")
        if isinstance(h, torch.Tensor) and h.dim() == 3 and h.shape[1] == self.num_blocks \
                and h.is_floating_point():
            return self._mixed_logits(h)
        return self._mixed_logits(layer_outputs(self, h))


def layer_outputs(model: BlockModel, x: Batched) -> torch.Tensor:
    """Every block's pooled output for one batch: (N, ...) -> (N, B, H)."""
    outs, h = [], x
    for block in model.blocks:
        h = block(h)
        outs.append(_pool(model, h).float())
    widths = [o.shape[1] for o in outs]
    if len(set(widths)) > 1:
        raise UserError(f"protocol='layer-mix' needs blocks whose pooled outputs have one "
                        f"width, got {widths} for {model.block_names}; allowed are text "
                        "encoders (every layer H wide); use linear-probe or probe:n instead")
    return torch.stack(outs, 1)


@torch.no_grad()
def layer_features(model: BlockModel, x: Batched, batch_size: int | None = None
                   ) -> torch.Tensor:
    """``layer_outputs`` in eval mode over a split, length-sorted batches: (N, B, H).

    ``batch_size`` None: ``features.default_batch_size`` (64 texts on CPU)."""
    from transferlab.data.batching import length_order, trim_padding
    from transferlab.features import default_batch_size

    if batch_size is None:
        batch_size = default_batch_size(x)

    was = model.training
    model.eval()
    order = length_order(x)
    n = len(x)
    parts = []
    for i in range(0, n, batch_size):
        xb = x[order[i:i + batch_size].to(x.device)] if order is not None else \
            x[i:i + batch_size]
        parts.append(layer_outputs(model, trim_padding(xb)))
    model.train(was)
    if not parts:
        return torch.zeros((0, model.num_blocks, 0))
    out = torch.cat(parts)
    return out[torch.argsort(order.to(out.device))] if order is not None else out


def cached_layer_features(model: BlockModel, task, splits=("train", "val", "test")
                          ) -> dict[str, torch.Tensor]:
    """Per-layer pooled features of ``task``'s splits, from the on-disk cache when there."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    from transferlab._atomic import atomic_path
    from transferlab.data.paths import cache_dir
    from transferlab.features import prefix_digest

    ident = f"{prefix_digest(model, model.num_blocks)}|{task.fingerprint}|" \
            f"{getattr(model.head, 'pool', 'flatten')}|v{LAYER_FEATURES_VERSION}"
    path = cache_dir() / "layer-mix" / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}" \
                                       ".safetensors"
    device = task.x_train.device
    if path.exists():
        try:
            got = load_file(str(path), device=str(device))
            # sizes and one (B, H) for every split (an empty split was once stored (0, B, 0))
            if all(s in got and len(got[s]) == len(getattr(task, f"y_{s}"))
                   and got[s].shape[1:] == got[splits[0]].shape[1:] for s in splits):
                return {s: got[s] for s in splits}
        except (SafetensorError, OSError):
            pass
    feats = {s: layer_features(model, getattr(task, f"x_{s}")) for s in splits
             if len(getattr(task, f"y_{s}"))}
    shape = next(iter(feats.values())).shape[1:] if feats else (model.num_blocks, 0)
    for s in splits:  # an empty split (no validation when k < 4): (0, B, H) like the others
        feats.setdefault(s, torch.zeros((0, *shape)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({s: f.contiguous().cpu() for s, f in feats.items()}, str(tmp))
    return feats


@dataclass
class LayerMixConfig(ProtocolConfig):
    freeze_prefix: bool = True
    mix_optimizer: str = field(default="lbfgs", metadata={
        "help": "how s, gamma and the head are fitted on the cached features: lbfgs (full "
                "batch, L2 picked on validation), adam or sgd (TrainConfig epochs, lr, "
                "batch_size)"})
    solver: ClassVar[str] = "layer-mix"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.freeze_prefix and self.depth is None and self.upto is None):
            raise bad_value("freeze_prefix/depth", (self.freeze_prefix, self.depth),
                            "(True, None) for layer-mix: it mixes every frozen block",
                            "use 'freeze:n' to train blocks")
        if self.mix_optimizer not in MIX_OPTIMIZERS:
            raise bad_value("mix_optimizer", self.mix_optimizer, ", ".join(MIX_OPTIMIZERS))

    def plan(self, model, num_classes, generator=None, lr_mult=None, layer_decay=None) -> Plan:
        plan = make_plan(self, model, num_classes, generator, lr_mult, layer_decay)
        # The fit computes every block's pooled output itself (one pass): transfer must not
        # compute the last block's full states on top of that.
        plan.frozen_prefix = 0
        model.__class__ = LayerMixModel
        p = next(model.head.parameters())
        model.mix = ScalarMix(model.num_blocks).to(p.device)
        return plan

    def fit(self, plan: Plan, feats: dict, task, cfg, generator=None,
            progress: bool = False) -> dict:
        """Fit the mix and the head on cached per-layer features. Replaces ``feats[split]``
        by those (N, B, H) features, which ``LayerMixModel.forward_from`` reads, so that the
        evaluation that follows does not run the encoder again."""
        model = plan.model
        t0 = time.perf_counter()
        f = cached_layer_features(model, task)
        feature_time = time.perf_counter() - t0
        feats.update(f)
        if self.mix_optimizer == "lbfgs":  # L2 chosen on held-out data, then refit on all
            l2, val_acc, how = _fit_lbfgs(model, f, task, cfg.l2)
        else:
            mu = f["train"].mean(0, keepdim=True)  # centring: exact (the bias is unpenalised)
            l2, how = (cfg.l2 if cfg.l2 is not None else cfg.weight_decay), "given"
            _fit_minibatch(model, f, mu, task, cfg, l2, self.mix_optimizer, generator)
            with torch.no_grad():
                logits = model.forward_from(f["val"], 0)
                # not measured without a validation split: None, never a number
                val_acc = (logits.argmax(1) == task.y_val).float().mean().item() \
                    if len(task.y_val) else None
        return {"l2": l2, "val_acc": val_acc, "l2_selection": how,
                "layer_feature_time_s": feature_time,
                "mix_weights": [round(float(w), 6) for w in model.mix.s.detach().softmax(0)],
                "gamma": float(model.mix.gamma.detach())}


def _params(model: LayerMixModel) -> list[nn.Parameter]:
    from transferlab.models.heads import head_linear

    lin = head_linear(model)
    return [model.mix.s, model.mix.gamma, lin.weight] + ([lin.bias] if lin.bias is not None
                                                          else [])


def _objective(model, fc: torch.Tensor, y: torch.Tensor, l2: float):
    """fc: centred features (N, B, H) (the mix is linear, so centring commutes with it)."""
    from transferlab.models.heads import head_linear

    logits = head_linear(model)(model.mix(fc))
    # L2 on the effective weights gamma * W (gamma alone would let the scale run away) and
    # on the mix logits s (a saturated softmax is a choice the data must pay for)
    w = model.mix.gamma * head_linear(model).weight
    return F.cross_entropy(logits, y) + 0.5 * l2 * (w.pow(2).sum() + model.mix.s.pow(2).sum())


def _absorb_centre(model, mu: torch.Tensor) -> None:
    """Fold the centring into the bias: head(mix(f - mu)) == head'(mix(f))."""
    from transferlab.models.heads import head_linear

    lin = head_linear(model)
    with torch.no_grad():
        if lin.bias is not None:
            lin.bias.sub_(lin.weight @ model.mix(mu)[0])


def _fit_lbfgs(model, f: dict, task, l2: float | None) -> tuple[float, float, str]:
    """Choose L2 along the linear probe's grid (on the val split, or by cross-validation
    over train + val when it is tiny: ``linear_probe.CV_BELOW``), then refit s, gamma and
    the head on train + val (every labelled example). Returns (l2, the held-out accuracy
    that chose it, how it was chosen)."""
    from transferlab.models.heads import head_linear
    from transferlab.protocols.linear_probe import (CV_BELOW, CV_FOLDS, L2_GRID, PATH_ITERS,
                                                    POLISH_ITERS, cv_folds)

    params = _params(model)

    def reset() -> None:
        with torch.no_grad():
            params[0].zero_()
            params[1].fill_(1.0)
            for p in params[2:]:
                p.zero_()

    def run(fc, y, lam: float, iters: int) -> None:
        opt = torch.optim.LBFGS(params, lr=1, max_iter=iters, tolerance_grad=1e-6,
                                tolerance_change=1e-9, history_size=20,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = _objective(model, fc, y, lam)
            loss.backward()
            return loss
        opt.step(closure)

    def path(x_tr, y_tr, x_va, y_va) -> list[tuple[float, list]]:
        """The loose path strongest first, warm-started: (held-out acc, params) per L2."""
        reset()
        mu = x_tr.mean(0, keepdim=True)  # centred once (measured: a copy per call dominated)
        fc_tr, fc_va = x_tr - mu, x_va - mu
        out = []
        for lam in L2_GRID:
            run(fc_tr, y_tr, lam, PATH_ITERS)
            with torch.no_grad():
                acc = (head_linear(model)(model.mix(fc_va)).argmax(1) == y_va).float() \
                    .mean().item()
            out.append((acc, [p.detach().clone() for p in params]))
        return out

    y_tr, y_va = task.y_train, task.y_val
    x_all, y_all = torch.cat([f["train"], f["val"]]), torch.cat([y_tr, y_va])
    acc, how = None, "given"  # None: not measured without a validation split
    if not len(y_va):
        how, l2 = ("given" if l2 is not None else "none: no validation data"), \
            (L2_GRID[0] if l2 is None else l2)
    elif l2 is None and int(torch.bincount(y_va.cpu(), minlength=task.num_classes).min()) \
            < CV_BELOW:
        folds = cv_folds(y_all)
        accs = [0.0] * len(L2_GRID)
        for tr, va in folds:
            for i, (a, _) in enumerate(path(x_all[tr], y_all[tr], x_all[va], y_all[va])):
                accs[i] += a / len(folds)
        i = max(range(len(L2_GRID)), key=lambda j: (accs[j], -j))  # ties: the stronger L2
        l2, acc, how = L2_GRID[i], accs[i], f"cv-{min(CV_FOLDS, len(folds))}"
    elif l2 is None:  # the linear probe's path on train, scored on val
        fits = path(f["train"], y_tr, f["val"], y_va)
        i = max(range(len(L2_GRID)), key=lambda j: (fits[j][0], -j))
        l2, acc, how = L2_GRID[i], fits[i][0], "val"
    else:
        reset()  # a given L2: its held-out accuracy from a loose train-only fit
        mu = f["train"].mean(0, keepdim=True)
        run(f["train"] - mu, y_tr, l2, PATH_ITERS)
        with torch.no_grad():
            acc = (head_linear(model)(model.mix(f["val"] - mu)).argmax(1) == y_va).float() \
                .mean().item()
    # The final fit: every labelled example, the path walked down to the chosen L2.
    reset()
    mu_all = x_all.mean(0, keepdim=True)
    fc_all = x_all - mu_all
    for lam in L2_GRID:
        if lam <= l2:
            break
        run(fc_all, y_all, lam, PATH_ITERS)
    run(fc_all, y_all, l2, POLISH_ITERS)
    _absorb_centre(model, mu_all)
    for p in params:
        p.grad = None
    return l2, acc, how


def _fit_minibatch(model, f: dict, mu, task, cfg, l2: float, kind: str, generator) -> None:
    params = _params(model)
    opt = torch.optim.Adam(params, lr=cfg.lr) if kind == "adam" else \
        torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    x, y = f["train"] - mu, task.y_train
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(y), generator=generator).to(x.device)
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            opt.zero_grad()
            _objective(model, x[idx], y[idx], l2).backward()
            opt.step()
    _absorb_centre(model, mu)
    for p in params:
        p.grad = None


register_protocol("layer-mix", LayerMixConfig, takes_depth=False,
                  summary="ELMo scalar mix: softmax-weighted sum of every block's pooled "
                          "output times a learned scale, encoder frozen, features cached; "
                          "then a linear head (L-BFGS, or adam/sgd)")
