"""What fine-tuning changed: relative weight change per (protocol, k, block, kind).

For every finished trial with kept weights, the trained model is compared with the state
the trial started from (``analysis.weights.initial_state``): pretrained blocks against the
source, the new head against its own seeded initialisation. Per (protocol, k, block, kind)
the relative change ||W - W0|| / ||W0|| is averaged over the units (seed, episode) with a
95% t-interval, and the directions are compared between episodes: the mean pairwise cosine
of the W - W0 vectors (1: every support set moves the weights the same way).
Kinds: conv weight (kernels), linear weight, bias, bn gamma, bn beta, bn running_mean,
bn running_var (``analysis.weights.KINDS``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.analysis.weights import (KINDS, compare_weights, group_deltas,
                                          initial_state, mean_pairwise_cosine,
                                          parameter_kinds)
from transferlab.studies.kit.stats import mean_std, t_interval

# Parameter kinds and BatchNorm statistics, as the issue names them.
PARAMETER_KINDS = ("conv weight", "linear weight", "bias", "bn gamma", "bn beta")
STAT_KINDS = ("bn running_mean", "bn running_var")
MOVED = 1e-7  # relative change above this counts as "moved" (float32 round-off is ~1e-8)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def weight_change(df: pd.DataFrame, db: str | Path, source_loader: Callable,
                  num_classes: int, protocols: list[str], shots: list[int]) -> list[dict]:
    """Rows ``{protocol, shots, block, kind, relative_change, ci_low, ci_high, n, values,
    cosine_between_episodes, n_params}`` for every measured group, in protocol, k, block
    order. ``source_loader()`` returns the source BlockModel the trials started from."""
    from transferlab.models import block_of_parameter
    from transferlab.sweep import load_trial_model
    from transferlab.sweep.artifacts import NotKept

    source = source_loader()
    done = df[df["status"].eq("done")] if "status" in df.columns else df
    name = done["protocol_spec"] if "protocol_spec" in done.columns else done["protocol"]
    inits: dict[tuple[str, int], dict] = {}
    not_kept = 0
    rows: list[dict] = []
    for p in protocols:
        for k in shots:
            trials = done[(name == p) & (pd.to_numeric(done["per_class"]) == k)]
            trials = trials.sort_values(["seed", "episode"])
            rel: dict[tuple[str, str], list[float]] = {}
            deltas: dict[tuple[str, str], list] = {}
            sizes: dict[tuple[str, str], int] = {}
            order: list[tuple[str, str]] = []
            for _, t in trials.iterrows():
                try:
                    model, _meta = load_trial_model(db, t["key"])
                except NotKept:  # weights not kept (--no-weights earlier) or pruned: counted
                    not_kept += 1  # a corrupt checkpoint (checksum) is not this: it raises
                    continue
                seed = int(t["seed"])
                if (p, seed) not in inits:
                    inits[(p, seed)] = initial_state(source, p, num_classes, seed)
                before, after = inits[(p, seed)], model.state_dict()
                block_of, kind_of = block_of_parameter(model), parameter_kinds(model)
                table = compare_weights(before, after, block_of, kind_of)
                for r in table.itertuples():
                    key = (r.block, r.kind)
                    if key not in rel:
                        order.append(key)
                    rel.setdefault(key, []).append(float(r.rel_change))
                    sizes[key] = int(r.n_params)
                for key, d in group_deltas(before, after, block_of, kind_of).items():
                    deltas.setdefault(key, []).append(d)
            for key in order:
                vals = [v for v in rel[key] if math.isfinite(v)]
                mean, _ = mean_std(vals)
                ci = t_interval(vals)
                rows.append({"protocol": p, "shots": int(k), "block": key[0], "kind": key[1],
                             "relative_change": mean,
                             "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
                             "n": len(vals), "values": vals,
                             "cosine_between_episodes":
                                 _finite(mean_pairwise_cosine(deltas.get(key, []))),
                             "n_params": sizes[key]})
    if not_kept:  # said, not hidden: these trials are missing from every n above
        warnings.warn(f"weight change: {not_kept} finished trial(s) kept no weights and are "
                      "not measured; rerun the study with weights kept to include them",
                      stacklevel=2)
    return rows


def moved_summary(rows: list[dict], protocol: str, k: int) -> dict:
    """For one (protocol, k): per kind the largest mean relative change over blocks, the
    block where it is, and whether it moved at all (> ``MOVED``)."""
    out: dict[str, dict] = {}
    for r in rows:
        if r["protocol"] != protocol or r["shots"] != k or r["relative_change"] is None:
            continue
        kind = ("head " if r["block"] == "head" else "") + r["kind"]
        best = out.get(kind)
        if best is None or r["relative_change"] > best["relative_change"]:
            out[kind] = {"relative_change": r["relative_change"], "block": r["block"],
                         "cosine": r["cosine_between_episodes"]}
    for v in out.values():
        v["moved"] = v["relative_change"] > MOVED
    return out


def heatmap_matrix(rows: list[dict], protocols: list[str], blocks: list[str], kind: str,
                   k: int) -> np.ndarray:
    """(len(protocols), len(blocks)) mean relative change of ``kind`` at ``k``; NaN where
    a block has no such tensors."""
    m = np.full((len(protocols), len(blocks)), np.nan)
    for r in rows:
        if r["kind"] == kind and r["shots"] == k and r["protocol"] in protocols \
                and r["block"] in blocks and r["relative_change"] is not None:
            m[protocols.index(r["protocol"]), blocks.index(r["block"])] = r["relative_change"]
    return m


__all__ = ["weight_change", "moved_summary", "heatmap_matrix", "KINDS", "PARAMETER_KINDS",
           "STAT_KINDS", "MOVED"]
