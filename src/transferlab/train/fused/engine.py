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
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.errors import UserError
from transferlab.models.base import BlockModel
from transferlab.train.config import TrainConfig
from transferlab.train.fused.stacked import (MIX_BUFFER, StackedOptimizer, clip_per_trial,
                                             mix_batchnorm)
from transferlab.train.loop import _autocast, _schedule

_STATS_NORM = nn.modules.batchnorm._NormBase
_PLAIN = "use transferlab.transfer (the plain per-trial path) for it"


@dataclass(frozen=True)
class FusedTrial:
    """One trial's own settings; None takes the shared value."""

    seed: int = 0
    lr: float | None = None          # None: the shared TrainConfig.lr
    lr_mult: float | None = None     # None: the shared lr_mult (or the protocol's default)
    protocol: Any = None             # a Protocol differing from the shared one by depth only


@dataclass
class FusedTrialResult:
    """One trial's outcome, shaped like ``transfer``'s: metrics, history, weights."""

    metrics: dict
    history: list[dict]
    state: dict                      # the trained model's state dict (CPU tensors)
    config: dict                     # protocol, protocol_config, train (resolved), seed
    test_probs: torch.Tensor | None = field(default=None, repr=False)  # (M, C) float32, CPU


class _From(nn.Module):
    """``model.forward_from(x, start)`` as a module forward (for ``functional_call``)."""

    def __init__(self, model: BlockModel, start: int):
        super().__init__()
        self.m, self.start = model, start

    def forward(self, x):
        return self.m.forward_from(x, self.start)


def _root_hook(config, name: str):
    """The base class's definition of hook ``name`` (train/ does not import protocols)."""
    return [k for k in type(config).__mro__ if name in vars(k)][-1].__dict__[name]


def check_fusable(protocols: list, cfg: TrainConfig, x: Any) -> None:
    """Raise ``UserError`` when these trials cannot run fused (the plain path can)."""
    first = protocols[0]
    for proto in protocols:
        c = proto.config
        for hook in ("fit", "loss_term", "after_step"):
            if getattr(type(c), hook) is not _root_hook(c, hook):
                raise UserError(f"protocol={proto.name!r} has its own {hook}: allowed in "
                                "the fused engine are SGD-loop protocols without step hooks "
                                f"(freeze:n, finetune, bn-only, ...); {_PLAIN}")
        if type(c) is not type(first.config) or dataclasses.replace(
                c, depth=None, upto=None) != dataclasses.replace(first.config, depth=None,
                                                                  upto=None):
            raise UserError(f"protocol={proto.name!r} is invalid with {first.name!r} in one "
                            "fused job: allowed are protocols that differ by depth only; "
                            "group trials by protocol family")
    if cfg.augment:
        raise UserError(f"crop_padding={cfg.crop_padding}, hflip={cfg.hflip} is invalid for "
                        f"the fused engine: allowed is no augmentation; {_PLAIN}")
    if not isinstance(x, torch.Tensor):
        raise UserError(f"inputs of type {type(x).__name__} are invalid for the fused engine: "
                        f"allowed are tensors (images, vectors); {_PLAIN}")


def _frozen_names(model: nn.Module, frozen: list[nn.Module]) -> set[str]:
    """Names of the modules in eval mode under ``set_train_mode(model, frozen)``."""
    ids = {id(m) for m in frozen}
    out: set[str] = set()
    for name, m in model.named_modules():
        if id(m) in ids:
            out |= {f"{name}.{n}" if n else name for n, _ in m.named_modules()}
    return out


def _prefix(model: BlockModel, x: torch.Tensor, depth: int, channels_last: bool,
            cache: dict | None, key) -> torch.Tensor:
    """Eval-mode output of the first ``depth`` blocks, as ``transfer`` computes it."""
    from transferlab.features import prefix_features  # features imports train: no cycle here

    if depth == 0:
        return x
    if cache is not None and key in cache:
        return cache[key]
    out = prefix_features(model, x, depth, channels_last=channels_last)
    if cache is not None:
        cache[key] = out
    return out


def _split(x, y, t_count: int, name: str):
    """(x, y) of one split: shared (N, ...) / (N,) or per trial (T, N, ...) / (T, N)."""
    if y is None:
        return None, None, False
    per_trial = y.dim() == 2
    if per_trial and (y.shape[0] != t_count or x.shape[0] != t_count):
        raise UserError(f"{name}: per-trial labels of shape {tuple(y.shape)} are invalid: "
                        f"allowed is (T={t_count}, N) with inputs (T, N, ...)")
    return x, y, per_trial


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
    frozen_sets = [_frozen_names(p.model, p.frozen_modules) for p in plans]
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 and \
                not all(name in fs for fs in frozen_sets):
            raise UserError(f"dropout p={m.p} in {name} is invalid for the fused engine: "
                            f"allowed is no active dropout in blocks that train; {_PLAIN}")
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
        elif len(modes) == 2 and isinstance(m, _STATS_NORM) and m.track_running_stats:
            flags = torch.tensor([name in fs for fs in frozen_sets])
            mix_batchnorm(m, flags[0])
            buffers[f"m.{name}.{MIX_BUFFER}"] = flags.to(device)
        if modes != {True}:  # trains in some trial
            if isinstance(m, _STATS_NORM) and m.track_running_stats and m.momentum is None:
                raise UserError(f"BatchNorm {name} with momentum=None is invalid for the "
                                f"fused engine: allowed is a float momentum; {_PLAIN}")

    def train_mode() -> None:  # set_train_mode with the modules every trial freezes
        model.train()
        for m in evals:
            m.eval()

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    wrapper = _From(model, start)
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
        pre.setdefault(id(src), model if ti == 0 else copy.deepcopy(plans[ti].model).to(device))
    for split, (x, y) in {"train": (x_train, y_train), "val": (x_val, y_val),
                          "test": (x_test, y_test)}.items():
        x, y, per_trial = _split(x, y, t_count, split)
        if y is None:
            continue
        if multi:
            once = {} if per_trial else {k: _prefix(m, x, start, cfg.channels_last, None, None)
                                         for k, m in pre.items()}
            xs[split] = torch.stack([
                _prefix(pre[id(src)], x[ti], start, cfg.channels_last, None, None)
                if per_trial else once[id(src)] for ti, src in enumerate(sources)])
            ys[split] = y if per_trial else y.expand(t_count, -1)
            shared[split] = False
            continue
        x_in = x.reshape(-1, *x.shape[2:]) if per_trial else x
        key = (start, id(source), x_in.data_ptr(), tuple(x_in.shape)) \
            if split == "test" and not per_trial else None
        h = _prefix(model, x_in, start, cfg.channels_last,
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
            _keep_best(best_p, {"flat": flat}, improved)
            _keep_best(best_b, buffers, improved)
        else:
            va = vn = torch.full((t_count,), float("nan"), device=device)
            best_epoch = torch.where(active, epoch + 1, best_epoch)  # the last epoch
        log.append((start_active, loss, acc, va, vn))
    train_time = time.perf_counter() - t1  # (the device may still be working)
    if has_val:  # restore each ok trial's best epoch; a diverged trial keeps its weights
        restore = (diverged_at == 0) & (best_epoch > 0)
        _keep_best({"flat": flat}, best_p, restore)
        _keep_best(buffers, best_b, restore)
    # One synchronisation: the per-epoch log to the CPU, as per-trial histories.
    cols = [torch.stack([torch.as_tensor(c, device=device).double() for c in col]).cpu()
            for col in zip(*log)] if log else [torch.zeros(0, t_count)] * 5
    ran, losses, accs, vaccs, vnlls = cols
    diverged_at, best_epoch = diverged_at.cpu().tolist(), best_epoch.cpu().tolist()
    outcome, reason, epochs_run, history = [], [], [], []
    for ti in range(t_count):
        d = diverged_at[ti]
        epochs_run.append(int(ran[:, ti].sum()))
        outcome.append("diverged" if d else "ok")
        reason.append(f"training loss became {float(losses[d - 1, ti])} in epoch {d}; lower "
                      f"the learning rate (lr={cfgs[ti].lr}) or set max_grad_norm" if d else "")
        history.append([{"epoch": e + 1, "train_loss": float(losses[e, ti]),
                         "train_acc": float(accs[e, ti]), "val_acc": float(vaccs[e, ti]),
                         "val_nll": float(vnlls[e, ti])}
                        for e in range(len(log)) if ran[e, ti] and e + 1 != d])
        if best_epoch[ti] == 0:  # no epoch kept (none ran, or the first diverged)
            best_epoch[ti] = -1
    train_time = time.perf_counter() - t1
    return _results(locals())


def _keep_best(dst: dict, src: dict, which: torch.Tensor) -> None:
    """dst[k][t] = src[k][t] where ``which[t]`` ((T,) bool on their device; in place, no
    synchronisation)."""
    with torch.no_grad():
        for k, v in dst.items():
            v.copy_(torch.where(which.view(-1, *[1] * (v.dim() - 1)), src[k], v))


def _results(s: dict) -> list[FusedTrialResult]:
    """Per-trial metrics, states and probabilities from ``fit_fused``'s final locals."""
    t_count, plans, cfgs, protos, trials = (s["t_count"], s["plans"], s["cfgs"], s["protos"],
                                            s["trials"])
    params, buffers, fixed, score = s["params"], s["buffers"], s["fixed"], s["score"]
    has_test = "test" in s["ys"]
    test_acc, test_nll, probs = score("test", s["keep_probs"]) if has_test else (None,) * 3
    if has_test:
        test_acc, test_nll = test_acc.cpu(), test_nll.cpu()
    val_acc = score("val")[0].cpu() if s["has_val"] else None
    out = []
    for ti in range(t_count):
        state = {}
        for k, v in {**fixed, **params, **buffers}.items():
            name = k[2:]
            if name.endswith(MIX_BUFFER):
                continue
            t = v[ti] if k not in fixed else v
            state[name] = t.detach().cpu().contiguous().clone()
        order = [k for k in plans[ti].model.state_dict() if not k.endswith(MIX_BUFFER)]
        state = {k: state[k] for k in order}
        outcome, reason = s["outcome"][ti], s["reason"][ti]
        nan = float("nan")
        t_nll = float(test_nll[ti]) if has_test else nan
        if outcome == "ok":
            bad = next((k for k, v in state.items() if v.is_floating_point()
                        and not bool(torch.isfinite(v).all())), "")
            if bad or (has_test and not math.isfinite(t_nll)):
                outcome = "diverged"
                reason = (f"non-finite weights in {bad}" if bad else f"test NLL is {t_nll}") + \
                    f" after training; lower the learning rate (lr={cfgs[ti].lr}) or set " \
                    "max_grad_norm"
        model = plans[ti].model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_train = int(s["n"])
        per_time = s["train_time"] / t_count  # the fused job's time, shared evenly
        metrics = {
            "test_acc": float(test_acc[ti]) if has_test else nan, "test_nll": t_nll,
            "val_acc": float(val_acc[ti]) if val_acc is not None else nan,
            "trainable_params": trainable,
            "frozen_params": sum(p.numel() for p in model.parameters()) - trainable,
            "train_time_s": per_time, "feature_time_s": s["feature_time"] / t_count,
            "samples_per_s": n_train * s["epochs_run"][ti] / max(per_time, 1e-9),
            "epochs_run": s["epochs_run"][ti], "best_epoch": s["best_epoch"][ti],
            "outcome": outcome, "reason": reason, "cached_prefix": s["start"],
            "features_from_depth": None, "depth": plans[ti].depth,
            "reinitialised": plans[ti].reinitialised, "fused_trials": t_count,
        }
        config = {"protocol": protos[ti].name, "protocol_config": protos[ti].config.to_dict(),
                  "train": cfgs[ti].to_dict(), "seed": int(trials[ti].seed)}
        out.append(FusedTrialResult(metrics, s["history"][ti], state, config,
                                    probs[ti].contiguous() if probs is not None else None))
    return out
