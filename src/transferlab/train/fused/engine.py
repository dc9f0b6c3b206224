"""``fit_fused``: T trials trained as one model with stacked parameters.

What may differ between the trials (``FusedTrial``): the seed (the head's initialisation,
drawn by the protocol's plan from that seed's CPU generator exactly as ``transfer`` draws
it, and the batch order, drawn from the same generator), the learning rate and lr_mult,
the data (per-trial training / validation / test sets: few-shot episodes), and the depth
of a depth-taking protocol (``freeze:n`` for several n): a tensor one trial freezes has lr
0 in that trial, and a BatchNorm that is frozen in some trials and trains in others
computes both modes and selects per trial (``stacked.mix_batchnorm``).

What must be shared: the architecture (the source, or one source per trial of the same
architecture), the protocol's family and every other protocol field,
and the train config except lr / lr_mult (epochs, batch size, optimiser, schedule, ...).

How: ``torch.func.functional_call`` of ``model.forward_from(x, start)`` under
``torch.func.vmap`` over the trial dimension of the parameters, buffers and batches;
``start`` is the shortest frozen prefix of the trials, whose output is computed once. The
loss is the sum of the trials' mean cross-entropies, so each stacked slice's gradient is
exactly its trial's gradient; a trial whose loss is NaN poisons only its own slice.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.errors import UserError
from transferlab.models.base import BlockModel
from transferlab.train.config import TrainConfig
from transferlab.train.fused.parts import (PLAIN, STATS_NORM, From, check_fusable,
                                           frozen_names, keep_best, prefix, split_of)
from transferlab.train.fused.results import (FusedTrialResult, collect, histories,
                                             trial_states)
from transferlab.train.fused.stacked import (MIX_BUFFER, StackedOptimizer, clip_per_trial,
                                             mix_batchnorm)
from transferlab.train.loop import _autocast, _schedule


@dataclass(frozen=True)
class FusedTrial:
    """One trial's own settings; None takes the shared value."""

    seed: int = 0
    lr: float | None = None          # None: the shared TrainConfig.lr
    lr_mult: float | None = None     # None: the shared lr_mult (or the protocol's default)
    protocol: Any = None             # a Protocol differing from the shared one by depth only


def fit_fused(source: BlockModel | list[BlockModel], protocol, trials: list[FusedTrial],
              x_train: torch.Tensor, y_train: torch.Tensor,
              x_val: torch.Tensor | None, y_val: torch.Tensor | None,
              x_test: torch.Tensor | None, y_test: torch.Tensor | None,
              num_classes: int, train: TrainConfig | dict | None = None,
              keep_probs: bool = False, prefix_cache: dict | None = None,
              eval_chunk: int = 1024) -> list[FusedTrialResult]:
    """Train T = len(trials) transfer trials as one fused model; score each.

    Args:
        source: the pretrained model (not modified), on any device; or one model per
            trial, all of one architecture (a sweep's per-seed sources): each trial's
            frozen prefix is then computed from its own source.
        protocol: the shared ``Protocol`` (``transferlab.protocols.get_protocol(name)``);
            a trial's own ``protocol`` may differ from it by depth only.
        trials: the T trials' seeds, lr, lr_mult, protocol.
        x_train, y_train: shared (N, ...) / (N,) int64, or per trial (T, N, ...) / (T, N)
            (e.g. few-shot episodes). Every split's tensors must be on one device: the
            device the trials train on. Inputs of the model's block 0.
        x_val, y_val: validation split, shared or per trial (None or N=0: no validation,
            the last epoch is kept). With validation, the epoch of best validation accuracy
            is restored per trial (and ``patience`` stops a trial early), as ``fit`` does.
        x_test, y_test: test split, shared (M, ...) or per trial; None: not scored.
        train: the shared ``TrainConfig`` (or dict); its lr / lr_mult are the defaults of
            the trials'.
        keep_probs: also return each trial's test softmax (M, C) on the CPU.
        prefix_cache: a dict reused across calls: the frozen prefix's output on the
            *shared* test split, by (depth, source, tensor) (computed once per depth).
    Returns: one ``FusedTrialResult`` per trial, in order. A trial whose loss became
        non-finite has outcome "diverged" (its weights as they were then); the others go on.
    Raises: ``UserError`` for what only the plain path runs (custom fits, step hooks,
        augmentation, token inputs, dropout, BatchNorm without momentum).
    """
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(train or {})
    if not trials:
        raise UserError("trials=[] is invalid: allowed is a list of at least one FusedTrial")
    protos = [t.protocol or protocol for t in trials]
    check_fusable(protos, cfg, x_train)
    device, t_count = x_train.device, len(trials)
    cfgs = []
    for t, proto in zip(trials, protos):
        c = dataclasses.replace(cfg, lr=cfg.lr if t.lr is None else t.lr,
                                lr_mult=cfg.lr_mult if t.lr_mult is None else t.lr_mult)
        if c.lr_mult is None:  # the protocol's default, as resolve_train writes it
            c = dataclasses.replace(c, lr_mult=float(type(proto.config).default_lr_mult))
        cfgs.append(c)
    t0 = time.perf_counter()
    # -- plans: each trial's head (and re-initialised blocks) drawn on a CPU copy --------
    sources = list(source) if isinstance(source, (list, tuple)) else [source] * t_count
    if len(sources) != t_count:
        raise UserError(f"source: {len(sources)} models are invalid for {t_count} trials: "
                        "allowed is one shared model or one per trial")
    cpu_sources = {id(s): copy.deepcopy(s).cpu() for s in sources}
    plans, gens = [], []
    for t, proto, c, src in zip(trials, protos, cfgs, sources):
        gen = torch.Generator().manual_seed(int(t.seed))
        plans.append(proto.config.plan(copy.deepcopy(cpu_sources[id(src)]), num_classes, gen,
                                       lr_mult=c.lr_mult, layer_decay=c.layer_decay))
        gens.append(gen)  # continues, as transfer's, into the batch order
    model = plans[0].model
    # One structure runs every trial's weights: module types and settings (repr) and
    # every tensor's name and shape must agree.
    shapes = [(repr(p.model), [(k, v.shape) for k, v in p.model.state_dict().items()])
              for p in plans]
    if any(sh != shapes[0] for sh in shapes[1:]):
        raise UserError("source: models of different architectures are invalid in one fused "
                        "job: allowed are sources with the same parameter names and shapes; "
                        "group trials by architecture")
    start = min(p.frozen_prefix for p in plans)
    frozen_sets = [frozen_names(p.model, p.frozen_modules) for p in plans]
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 and \
                not all(name in fs for fs in frozen_sets):
            raise UserError(f"dropout p={m.p} in {name} is invalid for the fused engine: "
                            f"allowed is no active dropout in blocks that train; {PLAIN}")
    # -- which tensors are stacked, at which lr scale and decay per trial -----------------
    names = [n for n, _ in model.named_parameters()]
    per = [dict(p.model.named_parameters()) for p in plans]
    scale = {n: torch.zeros(t_count) for n in names}
    decay = {n: torch.zeros(t_count) for n in names}
    trains = set()
    for ti, (plan, c) in enumerate(zip(plans, cfgs)):
        ids = {id(p): n for n, p in per[ti].items()}
        for g in plan.groups:
            for p in g["params"]:
                if p.requires_grad:
                    n = ids[id(p)]
                    trains.add(n)
                    scale[n][ti] = g["lr_scale"]
                    decay[n][ti] = g.get("weight_decay", c.weight_decay) if p.dim() > 1 else 0.
    differ = {n for n in names if n not in trains and any(
        not torch.equal(per[0][n], d[n]) for d in per[1:])}
    trained = [n for n in names if n in trains]
    # Stacked copies (CPU, then the device): trained or differing parameters, all buffers.
    params = {f"m.{n}": torch.stack([d[n].detach() for d in per]).to(device)
              for n in names if n in trains or n in differ}
    buffers = {f"m.{n}": torch.stack([dict(p.model.named_buffers())[n].detach()
                                      for p in plans]).to(device)
               for n, _ in model.named_buffers()}
    # -- module modes per trial: all-eval -> eval, all-train -> train, else mixed BN -------
    evals = []
    for name, m in model.named_modules():
        modes = {name in fs for fs in frozen_sets}
        if modes == {True}:
            evals.append(m)
        elif len(modes) == 2 and isinstance(m, STATS_NORM) and m.track_running_stats:
            flags = torch.tensor([name in fs for fs in frozen_sets])
            mix_batchnorm(m, flags[0])
            buffers[f"m.{name}.{MIX_BUFFER}"] = flags.to(device)
        if modes != {True}:  # trains in some trial
            if isinstance(m, STATS_NORM) and m.track_running_stats and m.momentum is None:
                raise UserError(f"BatchNorm {name} with momentum=None is invalid for the "
                                f"fused engine: allowed is a float momentum; {PLAIN}")

    def train_mode() -> None:  # set_train_mode with the modules every trial freezes
        model.train()
        for m in evals:
            m.eval()

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    wrapper = From(model, start)
    # Parameters outside ``params`` are the same in every trial: the module's own.
    fixed = {f"m.{n}": p.detach() for n, p in model.named_parameters()
             if f"m.{n}" not in params}
    # The trained tensors live side by side in one (T, P) buffer; ``params`` holds views.
    keys = [f"m.{n}" for n in trained]
    sizes = [params[k][0].numel() for k in keys]
    flat = torch.cat([params[k].reshape(t_count, -1) for k in keys], 1) if keys else \
        torch.zeros(t_count, 0, device=device)
    with torch.no_grad():
        for k, v in zip(keys, torch.split(flat, sizes, 1)):
            params[k] = v.view(params[k].shape).requires_grad_(True)
    per_el = [(scale, "scale"), (decay, "decay")]  # (T,) per tensor -> (T, P) per element
    elem = {name: torch.cat([d[n].view(t_count, 1).expand(t_count, size)
                             for n, size in zip(trained, sizes)], 1).to(device)
            if keys else torch.zeros(t_count, 0, device=device) for d, name in per_el}
    opt = StackedOptimizer(flat, elem["scale"], elem["decay"],
                           torch.tensor([c.lr for c in cfgs], device=device), cfg.optimizer,
                           cfg.momentum)
    mask = (elem["scale"] != 0).float()

    def logits_of(p, b, x):
        return torch.func.functional_call(wrapper, {**p, **b}, (x,))

    # -- data: the shortest frozen prefix's output, once ---------------------------------
    xs, ys, shared = {}, {}, {}
    # Several sources: each trial's prefix is its own source's (per-trial features).
    multi = start > 0 and len(cpu_sources) > 1
    pre = {}
    for ti, src in enumerate(sources if multi else []):
        if id(src) not in pre:
            pre[id(src)] = model if ti == 0 else copy.deepcopy(plans[ti].model).to(device)
    for split, (x, y) in {"train": (x_train, y_train), "val": (x_val, y_val),
                          "test": (x_test, y_test)}.items():
        x, y, per_trial = split_of(x, y, t_count, split)
        if y is None:
            continue
        if multi:
            once = {} if per_trial else {k: prefix(m, x, start, cfg.channels_last, None, None)
                                         for k, m in pre.items()}
            xs[split] = torch.stack([
                prefix(pre[id(src)], x[ti], start, cfg.channels_last, None, None)
                if per_trial else once[id(src)] for ti, src in enumerate(sources)])
            ys[split] = y if per_trial else y.expand(t_count, -1)
            shared[split] = False
            continue
        x_in = x.reshape(-1, *x.shape[2:]) if per_trial else x
        key = (start, id(source), x_in.data_ptr(), tuple(x_in.shape)) \
            if split == "test" and not per_trial else None
        h = prefix(model, x_in, start, cfg.channels_last,
                    prefix_cache if key else None, key)
        xs[split] = h.reshape(t_count, -1, *h.shape[1:]) if per_trial else h
        ys[split], shared[split] = y, not per_trial
    feature_time = time.perf_counter() - t0

    def score(split: str, probs: bool = False):
        """(T,) accuracy and NLL (and (T, M, C) softmax on the CPU) in eval mode."""
        x, y = xs[split], ys[split]
        m_count = y.shape[-1]
        acc = torch.zeros(t_count, device=device, dtype=torch.long)  # exact counts
        nll = torch.zeros(t_count, device=device, dtype=torch.float64)
        out_p = []
        run = torch.func.vmap(logits_of, in_dims=(0, 0, None if shared[split] else 0))
        model.eval()
        with torch.no_grad():
            for i in range(0, m_count, eval_chunk):
                xb = x[i:i + eval_chunk] if shared[split] else x[:, i:i + eval_chunk]
                yb = y[i:i + eval_chunk] if shared[split] else y[:, i:i + eval_chunk]
                yb = yb.expand(t_count, -1)
                with _autocast(device, cfg):
                    out = run(params, buffers, xb)
                out = out.float()  # (T, m, C)
                acc += (out.argmax(-1) == yb).sum(1)
                nll += F.cross_entropy(out.transpose(1, 2), yb, reduction="none").sum(1).double()
                if probs:
                    out_p.append(torch.softmax(out, -1).cpu())
        train_mode()
        if m_count == 0:
            nan = torch.full((t_count,), float("nan"), device=device, dtype=torch.float64)
            return nan, nan, None
        # On the device (no synchronisation); exact counts over m in float64.
        return acc.double() / m_count, nll / m_count, (torch.cat(out_p, 1) if probs else None)

    # -- training ----------------------------------------------------------------------
    # Per-trial bookkeeping stays on the device (no synchronisation per step or epoch):
    # a trial stops (lr 0) when its loss turns non-finite (diverged: its weights stay as at
    # that epoch's end, as the plain loop leaves them) or when patience runs out.
    x_tr, y_tr = xs["train"], ys["train"]
    n = int(y_tr.shape[-1])
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    has_val = "val" in ys and ys["val"].shape[-1] > 0
    whole = cfg.batch_size >= n  # one step per epoch on the whole set: no shuffle needed
    step_fn = torch.func.vmap(logits_of, in_dims=(0, 0, None if whole and shared["train"]
                                                  else 0))
    active = torch.ones(t_count, device=device, dtype=torch.bool)
    diverged_at = torch.zeros(t_count, device=device, dtype=torch.long)
    best_val = torch.full((t_count,), float("nan"), device=device, dtype=torch.float64)
    best_epoch = torch.zeros(t_count, device=device, dtype=torch.long)
    bad = torch.zeros(t_count, device=device, dtype=torch.long)
    log: list[tuple] = []  # per epoch: (active at start, loss, acc, val acc, val nll)
    # Only the trained tensors (the flat buffer) and the buffers change while training.
    best_p = {"flat": flat.clone()} if has_val else None
    best_b = {k: v.clone() for k, v in buffers.items()} if has_val else None
    rows = torch.arange(t_count, device=device)[:, None]
    step = 0
    t1 = time.perf_counter()
    for epoch in range(cfg.epochs if n else 0):
        if (cfg.patience is not None or epoch % 10 == 9) and not bool(active.any()):
            break  # every trial stopped (one synchronisation, only when it can happen)
        train_mode()
        start_active = active.clone()
        perm = None if whole else \
            torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        loss_sum = torch.zeros(t_count, device=device)
        correct = torch.zeros(t_count, device=device)
        for s in range(0, n, cfg.batch_size):
            if perm is None:
                xb, yb = x_tr, y_tr.expand(t_count, -1)
            else:
                idx = perm[:, s:s + cfg.batch_size]  # (T, b)
                xb = x_tr[idx] if shared["train"] else x_tr[rows, idx]
                yb = y_tr[idx] if shared["train"] else y_tr[rows, idx]
            with _autocast(device, cfg):
                logits = step_fn(params, buffers, xb)
            logits = logits.float()
            per_trial = F.cross_entropy(logits.flatten(0, 1), yb.flatten(),
                                        reduction="none").view(t_count, -1).mean(1)
            grads = torch.autograd.grad(per_trial.sum(), [params[k] for k in keys])
            g = torch.cat([x.reshape(t_count, -1) for x in grads], 1)  # (T, P), one copy
            if cfg.max_grad_norm:
                clip_per_trial(g, mask, cfg.max_grad_norm)
            opt.step(g, _schedule(step, total, cfg.schedule), active)
            loss_sum += per_trial.detach() * yb.shape[1]
            correct += (logits.detach().argmax(-1) == yb).sum(1)
            step += 1
        loss, acc = loss_sum / n, correct / n
        finite = torch.isfinite(loss)
        diverged_at = torch.where(start_active & ~finite, epoch + 1, diverged_at)
        active = active & finite
        if has_val:
            va, vn, _ = score("val")
            improved = active & (torch.isnan(best_val) | (va > best_val))
            best_val = torch.where(improved, va, best_val)
            best_epoch = torch.where(improved, epoch + 1, best_epoch)
            bad = torch.where(improved, 0, bad + active.long())
            if cfg.patience is not None:
                active = active & (bad < cfg.patience)
            keep_best(best_p, {"flat": flat}, improved)
            keep_best(best_b, buffers, improved)
        else:
            va = vn = torch.full((t_count,), float("nan"), device=device)
            best_epoch = torch.where(active, epoch + 1, best_epoch)  # the last epoch
        log.append((start_active, loss, acc, va, vn))
    train_time = time.perf_counter() - t1  # (the device may still be working)
    if has_val:  # restore each ok trial's best epoch; a diverged trial keeps its weights
        restore = (diverged_at == 0) & (best_epoch > 0)
        keep_best({"flat": flat}, best_p, restore)
        keep_best(buffers, best_b, restore)
    # One synchronisation: the per-epoch log to the CPU, as per-trial histories.
    log = [tuple(torch.as_tensor(c, device=device).double().cpu() for c in row)
           for row in log]
    diverged_at, best_epoch = diverged_at.cpu().tolist(), best_epoch.cpu().tolist()
    outcome, reason, epochs_run, history = histories(log, diverged_at, cfgs)
    train_time = time.perf_counter() - t1
    t2 = time.perf_counter()
    test = score("test", keep_probs) if "test" in ys else None
    test_time = time.perf_counter() - t2  # includes the one sync of the scores to the CPU
    val_acc = score("val")[0].cpu() if has_val else None
    states = trial_states(t_count, plans, fixed, params, buffers)
    return collect(plans, cfgs, protos, [int(t.seed) for t in trials], states, test, val_acc,
                   outcome, reason, epochs_run, best_epoch, history,
                   {"train_time": train_time, "feature_time": feature_time, "n": n,
                    "start": start, "test_time": test_time})
