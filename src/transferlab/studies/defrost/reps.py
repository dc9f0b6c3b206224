"""Representations explain n*: source and target networks trained from scratch, block by block.

At the largest target size, for every seed and correlation level, the source network (the
pretrained source: trained from scratch on the source) and the target network (the cell's
``scratch`` trial, whose weights the sweep keeps) see the same inputs (the first
``similarity_samples`` target test examples); block i of one is compared with block i of the
other by linear CKA, debiased CKA, PWCCA, Procrustes (as a similarity, 1 - d/2) and the k-NN
overlap (k = 30). The inputs themselves are identical (similarity 1 at depth 0), so the
*fall depth* is the i in 0..L-1 after which the similarity drops the most (s_i - s_{i+1}
largest), or L when it never drops; the report sets it next to n* of that cell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from transferlab.errors import UserError
from transferlab.similarity import get_metric
from transferlab.studies.defrost.design import Design, source_entry
from transferlab.studies.kit.stats import mean_std

METRICS = ("linear_cka", "debiased_linear_cka", "pwcca", "procrustes", "knn_overlap")


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1).double()


def _outputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return [_flat(o) for o in model.block_outputs(x)]


def _score(name: str, a: torch.Tensor, b: torch.Tensor) -> float | None:
    try:
        v = get_metric(name)(a, b)
    except UserError:  # a dead (constant) block: undefined, reported as missing
        return None
    return 1.0 - v / 2.0 if name == "procrustes" else float(v)


def fall_depth(sims: list[float | None]) -> int | None:
    """0..L-1: after which depth the similarity (depth 0 = inputs = 1) drops the most; L if
    it never drops; None if a block is undefined."""
    if not sims or any(s is None for s in sims):
        return None
    s = [1.0] + list(sims)
    drops = [s[i] - s[i + 1] for i in range(len(sims))]
    i = int(np.argmax(drops))
    return i if drops[i] > 0 else len(sims)


def source_checkpoint(d: Design, db, seed: int):
    from transferlab.sweep import plan_sweep
    from transferlab.sweep.cache import source_path

    spec = {"name": "probe", "target": d.targets[(seed, d.sizes[-1], d.levels[0])],
            "sources": {"source": source_entry(d, seed)}, "data_dir": d.data_dir,
            "train": d.budget.train(d.sizes[-1]), "axes": {"protocol": ["scratch"]}}
    plan = plan_sweep(spec)
    return source_path(db, plan.sources["source"].pretrain_config(seed, plan.data_dir))


def compare(d: Design, df: pd.DataFrame, db) -> list[dict]:
    """One dict per correlation level: per metric the per-block mean over seeds and every
    seed's values, the fall depth of the mean curve, and the seeds compared."""
    from transferlab.checkpoint import load_checkpoint
    from transferlab.data import make_task
    from transferlab.sweep import load_trial_model

    n_max = d.sizes[-1]
    done = df[(df["status"] == "done") & (df["protocol"].astype(str) == "scratch")]
    out = []
    for level in d.levels:
        per: dict[str, list[list[float | None]]] = {m: [] for m in METRICS}
        seeds = []
        for seed in d.seeds:
            task_str = d.targets[(seed, n_max, level)]
            rows = done[done["task"] == task_str]
            if rows.empty:
                continue
            try:
                target_net, _ = load_trial_model(db, rows.iloc[0]["key"])
                source_net, _ = load_checkpoint(str(source_checkpoint(d, db, seed)))
            except UserError:
                continue  # weights not kept (an interrupted run): that seed is left out
            task = make_task(task_str, data_dir=d.data_dir, progress=False)
            x = task.x_test[:d.budget.similarity_samples]
            a, b = _outputs(source_net, x), _outputs(target_net, x)
            for m in METRICS:
                per[m].append([_score(m, u, v) for u, v in zip(a, b)])
            seeds.append(seed)
        if not seeds:
            continue
        metrics = {}
        for m, vals in per.items():
            cols = list(zip(*vals))
            means = [mean_std([v for v in c if v is not None])[0] for c in cols]
            metrics[m] = {"mean": means, "values": vals, "fall_depth": fall_depth(means)}
        out.append({"correlation": level, "target_size": n_max, "seeds": seeds,
                    "samples": int(min(d.budget.similarity_samples, len(task.x_test))),
                    "metrics": metrics})
    return out
