"""How far did training move each block's weights? (before vs after state dicts)

For every block and kind of parameter (conv weight, linear weight, bias, BatchNorm gamma /
beta / running mean / running variance) with W0 the tensors before and W after, all tensors
of one (block, kind) group taken together as one long vector:

* ``rel_change`` = ||W - W0|| / ||W0||  (0: untouched; NaN when W0 = 0 and W changed)
* ``cosine``     = <W, W0> / (||W|| ||W0||)  (1: only rescaled; NaN when either is 0)
* ``mean_shift`` = mean(W - W0) and ``mean_abs_shift`` = mean |W - W0|: for BatchNorm these
  are the shift of gamma, beta, the running mean and the running variance.

Integer buffers (``num_batches_tracked``) are counters, not weights, and are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from transferlab.errors import UserError

KINDS = ("conv weight", "linear weight", "bias", "bn gamma", "bn beta", "bn running_mean",
         "bn running_var", "other")
COLUMNS = ["block", "kind", "n_tensors", "n_params", "norm_before", "norm_after", "abs_change",
           "rel_change", "cosine", "mean_shift", "mean_abs_shift"]


def parameter_kinds(model: nn.Module) -> dict[str, str]:
    """Kind of every floating-point entry of ``model.state_dict()``, from its module's type."""
    kinds: dict[str, str] = {}
    for mod_name, mod in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        is_bn = isinstance(mod, nn.modules.batchnorm._BatchNorm)
        local = {"weight": "bn gamma", "bias": "bn beta", "running_mean": "bn running_mean",
                 "running_var": "bn running_var"} if is_bn else {}
        if not is_bn:
            if isinstance(mod, nn.modules.conv._ConvNd):
                local["weight"] = "conv weight"
            elif isinstance(mod, nn.Linear):
                local["weight"] = "linear weight"
            local["bias"] = "bias"
        for key, _ in list(mod.named_parameters(recurse=False)) + list(
                mod.named_buffers(recurse=False)):
            kinds[prefix + key] = local.get(key, "other")
    return kinds


def infer_kind(name: str, tensor: torch.Tensor, names: set[str]) -> str:
    """Kind from the state-dict key and shape alone (when no model is at hand).

    A ``.weight`` / ``.bias`` whose module also has ``running_mean`` is BatchNorm; other
    weights are conv (3D to 5D) or linear (2D).
    """
    prefix, _, leaf = name.rpartition(".")
    has_stats = f"{prefix}.running_mean" in names if prefix else "running_mean" in names
    if leaf in ("running_mean", "running_var"):
        return f"bn {leaf}"
    if leaf == "weight":
        if has_stats:
            return "bn gamma"
        return {2: "linear weight", 3: "conv weight", 4: "conv weight",
                5: "conv weight"}.get(tensor.ndim, "other")
    if leaf == "bias":
        return "bn beta" if has_stats else "bias"
    return "other"


def _default_block(name: str) -> str:
    """``blocks.3.0.weight`` -> ``blocks.3``; ``head.weight`` -> ``head``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) > 2 else parts[0]


def _check_keys(before: Mapping, after: Mapping) -> None:
    missing, extra = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    if missing or extra:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        parts = ([f"only in before: {show(missing)}"] if missing else []) + (
            [f"only in after: {show(extra)}"] if extra else [])
        raise UserError(f"before and after have different parameter names ({'; '.join(parts)}): "
                        "allowed are two state dicts of the same architecture; compare "
                        "checkpoints of one model before and after training")


def compare_weights(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                    block_of: Mapping[str, str] | None = None,
                    kind_of: Mapping[str, str] | None = None, level: str = "kind",
                    skip_mismatched: bool = False) -> pd.DataFrame:
    """Compare two state dicts of the same architecture, block by block.

    Args:
        before, after: parameter name -> tensor (e.g. ``model.state_dict()``); same keys.
        block_of: parameter name -> block name (``transferlab.models.block_of_parameter``);
            default: ``blocks.<i>`` / the first name component.
        kind_of: parameter name -> kind (``parameter_kinds(model)``); default: from names
            and shapes (``infer_kind``).
        level: ``"kind"``: one row per (block, kind); ``"tensor"``: one row per tensor
            (with a ``name`` column).
        skip_mismatched: drop tensors whose shapes differ (e.g. a replaced head) instead
            of raising; their names are in ``df.attrs["skipped"]``.
    Returns: a DataFrame with ``COLUMNS`` (plus ``name`` at tensor level), rows in block
        order of ``before``, kinds in ``KINDS`` order.
    """
    if level not in ("kind", "tensor"):
        raise UserError(f"level={level!r} is invalid: allowed are 'kind', 'tensor'; "
                        "pass level='kind'")
    _check_keys(before, after)
    names = set(before)
    if block_of is not None:
        unmapped = sorted(k for k in before if k not in block_of
                          and torch.as_tensor(before[k]).is_floating_point())
        if unmapped:
            raise UserError(f"block_of has no block for {', '.join(unmapped[:5])}: allowed is "
                            "a mapping of every parameter name to its block; build it with "
                            "transferlab.models.block_of_parameter(model)")
    rows, skipped, block_order = [], [], {}
    for name, w0 in before.items():
        w0, w1 = torch.as_tensor(w0), torch.as_tensor(after[name])
        if not (w0.is_floating_point() and w1.is_floating_point()):
            continue  # num_batches_tracked and other counters
        if w0.shape != w1.shape:
            if skip_mismatched:
                skipped.append(name)
                continue
            raise UserError(f"parameter {name!r} has shape {tuple(w0.shape)} before but "
                            f"{tuple(w1.shape)} after: allowed are equal shapes; pass "
                            "skip_mismatched=True (CLI: --skip-mismatched) to leave it out, "
                            "e.g. for a replaced head")
        block = block_of[name] if block_of is not None else _default_block(name)
        kind = kind_of.get(name) if kind_of is not None else None
        block_order.setdefault(block, len(block_order))
        rows.append({"name": name, "block": block,
                     "kind": kind or infer_kind(name, w0, names),
                     "w0": w0.detach().to("cpu", torch.float64).reshape(-1),
                     "w1": w1.detach().to("cpu", torch.float64).reshape(-1)})
    if level == "tensor":
        out = [{"name": r["name"], **_stats(r["block"], r["kind"], [r])} for r in rows]
        df = pd.DataFrame(out, columns=["name", *COLUMNS])
    else:
        groups: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            groups.setdefault((r["block"], r["kind"]), []).append(r)
        order = sorted(groups, key=lambda g: (block_order[g[0]], KINDS.index(g[1])
                                              if g[1] in KINDS else len(KINDS)))
        df = pd.DataFrame([_stats(b, k, groups[(b, k)]) for b, k in order], columns=COLUMNS)
    df.attrs["skipped"] = skipped
    return df


def _stats(block: str, kind: str, group: list[dict]) -> dict:
    """Change statistics of the concatenation of a group's tensors."""
    w0 = torch.cat([r["w0"] for r in group])
    w1 = torch.cat([r["w1"] for r in group])
    delta = w1 - w0
    n0, n1, nd = (float(torch.linalg.vector_norm(v)) for v in (w0, w1, delta))
    rel = nd / n0 if n0 > 0 else (0.0 if nd == 0 else float("nan"))
    cos = float(w0 @ w1) / (n0 * n1) if n0 > 0 and n1 > 0 else float("nan")
    return {"block": block, "kind": kind, "n_tensors": len(group), "n_params": int(w0.numel()),
            "norm_before": n0, "norm_after": n1, "abs_change": nd, "rel_change": rel,
            "cosine": float(np.clip(cos, -1.0, 1.0)) if np.isfinite(cos) else cos,
            "mean_shift": float(delta.mean()) if delta.numel() else float("nan"),
            "mean_abs_shift": float(delta.abs().mean()) if delta.numel() else float("nan")}


def initial_state(source: nn.Module, protocol: str, num_classes: int,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict a ``transfer(source, task, protocol, seed=seed)`` run starts from.

    Blocks are the source's (re-initialised ones as the protocol's seeded plan draws them)
    and the head is the new one, as ``make_plan`` initialises it from a generator seeded
    with ``seed`` (independent of the global RNG). Comparing a trained model against this,
    not against the source, measures a new head against its own initialisation, never
    against the source's head (which has other classes).
    """
    import copy

    from transferlab.protocols import get_protocol

    model = copy.deepcopy(source).cpu()
    get_protocol(protocol).config.plan(model, num_classes, torch.Generator().manual_seed(seed))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def group_deltas(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                 block_of: Mapping[str, str], kind_of: Mapping[str, str]
                 ) -> dict[tuple[str, str], torch.Tensor]:
    """``{(block, kind): W - W0}``, each group's tensors concatenated to one float32 vector
    (same grouping as ``compare_weights``; integer counters skipped)."""
    _check_keys(before, after)
    parts: dict[tuple[str, str], list[torch.Tensor]] = {}
    for name, w0 in before.items():
        w0, w1 = torch.as_tensor(w0), torch.as_tensor(after[name])
        if not (w0.is_floating_point() and w1.is_floating_point()) or w0.shape != w1.shape:
            continue
        key = (block_of[name], kind_of.get(name) or infer_kind(name, w0, set(before)))
        # both on the CPU before subtracting: a trained model may be on CUDA, its
        # initial_state on the CPU
        parts.setdefault(key, []).append((w1.detach().cpu().double() - w0.detach().cpu()
                                          .double()).reshape(-1).float())
    return {k: torch.cat(v) for k, v in parts.items()}


def mean_pairwise_cosine(deltas: list[torch.Tensor]) -> float:
    """Mean cosine similarity over all pairs of the vectors ``deltas`` (each (P,)).

    1: every run moved the weights in the same direction; ~0: unrelated directions. Pairs
    where a vector is zero (nothing moved) are left out; NaN with no pair left.
    """
    if len(deltas) < 2:
        return float("nan")
    m = torch.stack([d.double() for d in deltas])  # (R, P)
    norms = torch.linalg.vector_norm(m, dim=1)
    keep = norms > 0
    if int(keep.sum()) < 2:
        return float("nan")
    u = m[keep] / norms[keep, None]
    sims = u @ u.T
    r = u.shape[0]
    return float((sims.sum() - sims.diagonal().sum()) / (r * (r - 1)))
