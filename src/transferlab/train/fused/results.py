"""Per-trial results of the fused engine: states, metrics shaped like ``transfer``'s."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from transferlab.train.fused.stacked import MIX_BUFFER


@dataclass
class FusedTrialResult:
    """One trial's outcome, shaped like ``transfer``'s: metrics, history, weights."""

    metrics: dict
    history: list[dict]
    state: dict                      # the trained model's state dict (CPU tensors)
    config: dict                     # protocol, protocol_config, train (resolved), seed
    test_probs: torch.Tensor | None = field(default=None, repr=False)  # (M, C) float32, CPU


def trial_states(t_count: int, plans: list, fixed: dict, params: dict,
                 buffers: dict) -> list[dict]:
    """Each trial's full state dict on the CPU, in its model's key order (keys ``m.NAME``
    of the engine's dicts; stacked tensors sliced, shared ones copied)."""
    out = []
    for ti in range(t_count):
        state = {}
        for k, v in {**fixed, **params, **buffers}.items():
            if k.endswith(MIX_BUFFER):
                continue
            t = v if k in fixed else v[ti]
            state[k[2:]] = t.detach().cpu().contiguous().clone()
        order = [k for k in plans[ti].model.state_dict() if not k.endswith(MIX_BUFFER)]
        out.append({k: state[k] for k in order})
    return out


def histories(log: list[tuple], diverged_at: list[int], cfgs: list) -> tuple:
    """(outcome, reason, epochs_run, history) per trial from the per-epoch log, which holds
    (ran (T,), train loss, train acc, val acc, val nll) per epoch on the CPU."""
    t_count = len(cfgs)
    ran, losses, accs, vaccs, vnlls = [torch.stack(col) for col in zip(*log)] if log else \
        [torch.zeros(0, t_count)] * 5
    outcome, reason, epochs_run, history = [], [], [], []
    for ti in range(t_count):
        d = diverged_at[ti]
        epochs_run.append(int(ran[:, ti].sum()))
        outcome.append("diverged" if d else "ok")
        reason.append(f"training loss became {float(losses[d - 1, ti])} in epoch {d}; lower "
                      f"the learning rate (lr={cfgs[ti].lr}) or set max_grad_norm" if d else "")
        # The plain loop writes no history row for the epoch that diverged.
        history.append([{"epoch": e + 1, "train_loss": float(losses[e, ti]),
                         "train_acc": float(accs[e, ti]), "val_acc": float(vaccs[e, ti]),
                         "val_nll": float(vnlls[e, ti])}
                        for e in range(len(ran)) if ran[e, ti] and e + 1 != d])
    return outcome, reason, epochs_run, history


def collect(plans: list, cfgs: list, protos: list, seeds: list[int], states: list[dict],
            test: tuple | None, val_acc: torch.Tensor | None, outcome: list[str],
            reason: list[str], epochs_run: list[int], best_epoch: list[int],
            history: list[list[dict]], timing: dict) -> list[FusedTrialResult]:
    """One ``FusedTrialResult`` per trial. ``test``: (acc (T,), nll (T,), probs (T, M, C) or
    None) or None; ``timing``: train_time, feature_time (the job's), n (training examples),
    start (the shared frozen prefix). A trial whose weights or test NLL are not finite
    is "diverged", as ``transfer`` decides."""
    t_count, nan = len(plans), float("nan")
    test_acc, test_nll, probs = (test[0].cpu(), test[1].cpu(), test[2]) if test else \
        (None, None, None)
    out = []
    for ti in range(t_count):
        state, out_ti, why = states[ti], outcome[ti], reason[ti]
        t_nll = float(test_nll[ti]) if test else nan
        if out_ti == "ok":
            bad = next((k for k, v in state.items() if v.is_floating_point()
                        and not bool(torch.isfinite(v).all())), "")
            if bad or (test and not math.isfinite(t_nll)):
                out_ti = "diverged"
                why = (f"non-finite weights in {bad}" if bad else f"test NLL is {t_nll}") + \
                    f" after training; lower the learning rate (lr={cfgs[ti].lr}) or set " \
                    "max_grad_norm"
        model = plans[ti].model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        per_time = timing["train_time"] / t_count  # the fused job's time, shared evenly
        metrics = {
            "test_acc": float(test_acc[ti]) if test else nan, "test_nll": t_nll,
            "val_acc": float(val_acc[ti]) if val_acc is not None else nan,
            "trainable_params": trainable,
            "frozen_params": sum(p.numel() for p in model.parameters()) - trainable,
            "train_time_s": per_time, "feature_time_s": timing["feature_time"] / t_count,
            "test_time_s": timing.get("test_time", nan) / t_count,
            "samples_per_s": timing["n"] * epochs_run[ti] / max(per_time, 1e-9),
            "epochs_run": epochs_run[ti],
            "best_epoch": best_epoch[ti] if best_epoch[ti] > 0 else -1,  # -1: none kept
            "outcome": out_ti, "reason": why, "cached_prefix": timing["start"],
            "features_from_depth": None, "depth": plans[ti].depth,
            "reinitialised": plans[ti].reinitialised, "fused_trials": t_count,
        }
        config = {"protocol": protos[ti].name, "protocol_config": protos[ti].config.to_dict(),
                  "train": cfgs[ti].to_dict(), "seed": seeds[ti]}
        out.append(FusedTrialResult(metrics, history[ti], state, config,
                                    probs[ti].contiguous() if probs is not None else None))
    return out
