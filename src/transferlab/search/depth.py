"""``best_depth``: which freeze depth n to use, without training every ``freeze:n``.

Three stages, every choice by validation accuracy only:

1. **Probes** (cheap signals): ``probe:n`` at every depth n = 1..L, on prefix features
   computed once, block by block (depth n extends the cached depth n-1); the walk's
   trials reuse those features. Their times per example price the test evaluations of
   the exhaustive sweep the cap is measured against.
2. **The walk**: ``freeze:n`` with the full training config and the first seed, at both
   ends first -- n = L (the cheapest: only the head trains, on cached features) and n = 0
   (the dearest: the whole network per step) -- then inward from the better end, one depth
   at a time. It stops when ``patience`` depths in a row bring no better validation
   accuracy and no probe ahead promises better (a probe's accuracy above the walk's best
   says those blocks' features serve the target better), or before a depth whose
   projected cost would pass the budget's cap: the walk's and the final check's trials
   together stay under a fraction of the estimated exhaustive sweep's trials (the probes
   are a fixed cost outside the cap: one forward pass through the network, whose features
   the walk's trials reuse, and L small L-BFGS fits). A walk from the deep end only was
   tried first: on the benchmark's cases the best depth was n = 0 in most, and patience
   on 10-example validation sets stopped it at a deep depth (gaps of 1-24 points on 7 of
   8 cases).
3. **Final check**: the ``finalists`` best depths of the walk (a runner-up only when it is
   within ``margin_se`` binomial standard errors of the best) get every seed (halving the
   candidates, doubling the evidence); the best mean validation accuracy wins (ties: the
   lower mean validation NLL, then the better probe, then the deeper, cheaper depth).

Short-epoch rungs (successive halving with growing epochs) were tried first and dropped:
at the target sizes this is for (tens to hundreds of examples per class, a few SGD steps
per epoch) 2 of 10 epochs left every depth near chance on validation (measured on
digits, 30 per class: 0.17-0.37 for all eight depths), so they ranked nothing.

Stages 1 and 2 run on a *selection view* of the task whose test split is replaced by its
validation split: no test example is computed on before the walk ends. Only the final
check reads the task's test split, and its test accuracies are reported, never compared.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from transferlab.errors import UserError, bad_value
from transferlab.search.budgets import SearchBudget, get_budget
from transferlab.search.signals import exhaustive_cost, probe_profile, project_cost, test_accuracy


@dataclass
class DepthSearchResult:
    """The chosen freeze depth and what the search measured to choose it.

    ``val_acc`` / ``test_acc``: means over ``seeds`` of ``protocol`` trained with the full
    training config (the final check). ``evidence``: one dict per measurement, with keys
    depth, stage ("probe" | "walk" | "final"), measure, value, epochs, seeds, compute_s
    (wall seconds spent on it) and, for the final check, test_acc.
    """

    depth: int
    protocol: str
    val_acc: float
    test_acc: float
    wall_time_s: float
    evidence: list[dict] = field(default_factory=list)
    budget: str = "quick"
    seeds: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    epochs: int = 0
    estimated_exhaustive_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _load_source(source):
    from transferlab.checkpoint import load_checkpoint
    from transferlab.models import BlockModel

    if isinstance(source, BlockModel):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_checkpoint(source)[0]
    raise bad_value("source", type(source).__name__,
                    "a checkpoint path or a BlockModel", "pass the pretrained model or its file")


def _resolve_depths(depths, num_blocks: int) -> list[int]:
    allowed = f"depths in 0..{num_blocks} for this model"
    if depths is None:
        return list(range(num_blocks + 1))
    if isinstance(depths, (int, str)):
        depths = [depths]
    out = []
    for d in depths:
        if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= num_blocks:
            raise bad_value("depths", list(depths), allowed, "drop the depths beyond the model")
        out.append(d)
    if not out:
        raise bad_value("depths", list(depths), allowed, "give at least one depth")
    return sorted(set(out))


def _selection_view(task):
    """``task`` with its test split replaced by the validation split (see module doc)."""
    return dataclasses.replace(task, x_test=task.x_val, y_test=task.y_val,
                               test_index=task.val_index)


def _rank(rows: dict[int, float], probe: dict[int, float],
          nll: dict[int, float] | None = None) -> list[int]:
    """Depths best first: validation accuracy, then validation NLL (small validation sets
    tie often: 10 examples give accuracies in steps of 0.1), then the probe's accuracy,
    then deeper (cheaper)."""
    nll = nll or {}
    return sorted(rows, key=lambda n: (-rows[n], nll.get(n, math.inf), -probe.get(n, 0.0),
                                       -n))


def best_depth(source, task, *, budget: str | SearchBudget = "quick", seeds=(0,),
               depths=None, train=None, progress: bool = False,
               data_dir: str | None = None) -> DepthSearchResult:
    """Choose the freeze depth n of ``freeze:n`` for ``task`` by validation accuracy.

    Args:
        source: a checkpoint path or a ``BlockModel`` (never modified).
        task: a task string (``"mnist:classes=5-9:per_class=100"``) or a ``Task``; it needs
            a validation split (``per_class`` >= 4, or ``val_per_class``).
        budget: ``"quick"`` (cap 25% of the estimated exhaustive sweep) or ``"standard"``
            (50%, patience 2), ``"thorough"`` (every depth, no cap), or a ``SearchBudget``.
        seeds: training seeds of the final check (the probes and the walk use the first).
        depths: candidate depths (default 0..L).
        train: the training config of every ``freeze:n`` (``TrainConfig`` or dict); its
            ``epochs`` is E, the final check's epochs.
    Returns: a ``DepthSearchResult``.
    """
    from transferlab.api import transfer
    from transferlab.data import Task, make_task
    from transferlab.features import FeatureCache
    from transferlab.train import TrainConfig

    t_start = time.perf_counter()
    plan = get_budget(budget)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
        raise bad_value("seeds", seeds, "a non-empty list of integers", "e.g. seeds=(0, 1)")
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.from_dict(dict(train or {}))
    model = _load_source(source)
    candidates = _resolve_depths(depths, model.num_blocks)
    if not isinstance(task, Task):
        task = make_task(str(task), data_dir=data_dir, progress=progress)
    if task.n_val == 0:
        raise UserError(f"task {str(task.spec)!r} has no validation split, and the depth "
                        "search chooses by validation only; allowed are tasks with one "
                        "(per_class >= 4, or val_per_class=v)")
    from transferlab.models.compat import check_runs_on

    check_runs_on(model, task.x_train, "source", str(task.spec))  # modality, size: one line
    view, E = _selection_view(task), cfg.epochs
    base = cfg.to_dict()
    evidence: list[dict] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="transferlab-depth-") as tmp:
        view_cache = FeatureCache(Path(tmp) / "view")
        full_cache = FeatureCache(Path(tmp) / "full")

        def run(t, protocol, epochs, seed, cache):
            if progress:
                print(f"depth search: {protocol} seed {seed} ({epochs} epochs)",
                      file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            res = transfer(model, t, protocol, {**base, "epochs": epochs}, seed=seed,
                           feature_cache=cache, progress=False)
            return res, time.perf_counter() - t0

        # 1. probes at every depth, ascending: each depth's features extend the cached
        # shallower ones (and stay cached for the walk's trials)
        probe, feature_time = probe_profile(model, view, cfg, view_cache, seeds[0], evidence)
        per_example = {k: t / max(view.n_train + 2 * view.n_val, 1)
                       for k, t in feature_time.items()}
        test_cost = {n: task.n_test * sum(v for k, v in per_example.items() if k > n)
                     for n in candidates}
        # 2. the walk: freeze:n with one seed, both ends first (L: the cheapest; 0: the
        # dearest, and in every benchmark case measured so far the best), then inward
        # from the better end while defrosting (or freezing) still pays and the
        # projected cost fits the cap
        walk, cost, models, stopped, nll = {}, {}, {}, "", {}
        order = [max(candidates), min(candidates)]
        since_best, best = 0, -math.inf
        while True:
            todo = [n for n in order if n not in walk]
            if not todo:
                if len(walk) < 2 or len(walk) == len(candidates) or len(order) > 2:
                    break
                from_shallow = _rank(walk, probe, nll)[0] == min(candidates)
                order += sorted((n for n in candidates if n not in walk),
                                reverse=not from_shallow)
                continue
            n = todo[0]
            if walk:
                proj = project_cost(n, cost, model.num_blocks)
                exhaustive = exhaustive_cost(candidates, cost, model.num_blocks, len(seeds),
                                         test_cost)
                reserve = (len(seeds) - 1) * cost[_rank(walk, probe, nll)[0]]
                if sum(cost.values()) + proj + reserve > plan.cap * exhaustive:
                    stopped = (f"the walk stopped before freeze:{n}: its projected "
                               f"{proj:.1f} s would pass the budget's cap ({plan.cap:.0%} of "
                               f"an estimated {exhaustive:.1f} s exhaustive sweep)")
                    break
                # a probe ahead (depths not yet walked, in the walk's direction) above the
                # best says those blocks' features serve the target better: keep going
                ahead = todo if len(walk) >= 2 else []
                promise = max((probe.get(k, -1.0) for k in ahead), default=-1.0)
                if len(walk) >= 2 and since_best >= plan.patience and promise <= best:
                    stopped = (f"the walk stopped before freeze:{n}: {plan.patience} "
                               "depth(s) in a row without a better val_acc, and no probe "
                               f"ahead above the best ({best:.4f})")
                    break
            res, spent = run(view, f"freeze:{n}", E, seeds[0], view_cache)
            m = res.metrics
            walk[n] = m["val_acc"] if m["outcome"] == "ok" else -1.0
            if len(walk) > 2:
                since_best = 0 if walk[n] > best else since_best + 1
            best = max(best, walk[n])
            # the view's test split is its validation split: test_nll is the val NLL
            nll[n] = m["test_nll"] if math.isfinite(m["test_nll"]) else math.inf
            cost[n] = spent
            models[n] = res.model
            for d in _rank(walk, probe, nll)[plan.finalists:]:
                models.pop(d, None)  # keep only the models a final check can use
            evidence.append({"depth": n, "stage": "walk", "measure": f"freeze:{n} val_acc",
                             "value": m["val_acc"], "val_nll": m["test_nll"], "epochs": E,
                             "seeds": [seeds[0]], "compute_s": spent,
                             **({"outcome": m["outcome"]} if m["outcome"] != "ok" else {})})
        if stopped:
            notes.append(stopped)
        exhaustive = exhaustive_cost(candidates, cost, model.num_blocks, len(seeds), test_cost)
        # 3. final check: the best depths of the walk with every seed, on the task itself
        # (seed 0's walk model is scored on the test split here, after its training)
        final, final_nll, trials_s = {}, {}, sum(cost.values())
        ranked = _rank(walk, probe, nll)
        top = walk[ranked[0]]
        # Laplace-smoothed (p = (k + 1) / (n + 2)): 10/10 correct is not a zero error bar
        p_top = (top * task.n_val + 1) / (task.n_val + 2)
        se = math.sqrt(p_top * (1 - p_top) / task.n_val)
        for rank, n in enumerate(ranked[:plan.finalists]):
            if rank and plan.margin_se and top - walk[n] > plan.margin_se * se:
                notes.append(f"the final check left out freeze:{n} (rank {rank + 1}): its "
                             f"val_acc {walk[n]:.4f} is more than {plan.margin_se:g} standard "
                             f"errors ({se:.4f}) below the best's {top:.4f}")
                break
            extra = (len(seeds) - 1) * cost[n]
            if rank and trials_s + extra > plan.cap * exhaustive:
                notes.append(f"the final check skipped freeze:{n} (rank {rank + 1}): its "
                             f"{len(seeds) - 1} more seed(s) would pass the cap")
                break
            t0 = time.perf_counter()
            vals, nlls = [walk[n]], [nll[n]]
            tests = [test_accuracy(models.pop(n), task, n, cfg, full_cache)]
            for s in seeds[1:]:
                # trained on the view too (its test NLL is the validation NLL, the
                # tie-break), then scored on the task's test split
                res, _ = run(view, f"freeze:{n}", E, s, view_cache)
                ok = res.metrics["outcome"] == "ok"
                vals.append(res.metrics["val_acc"] if ok else -1.0)
                nlls.append(res.metrics["test_nll"] if ok else math.inf)
                tests.append(test_accuracy(res.model, task, n, cfg, full_cache))
            final[n] = (fmean(vals), fmean(tests))
            final_nll[n] = fmean(nlls)
            trials_s += time.perf_counter() - t0
            evidence.append({"depth": n, "stage": "final", "measure": f"freeze:{n} val_acc",
                             "value": final[n][0], "val_nll": final_nll[n], "epochs": E,
                             "seeds": seeds, "compute_s": time.perf_counter() - t0,
                             "test_acc": final[n][1]})
    from transferlab._chance import check_decision

    # every depth's best validation accuracy, its linear probe's or its walk trial's
    seen = {n: max(probe.get(n, -1.0), walk.get(n, -1.0)) for n in candidates
            if n in probe or n in walk}
    check_decision("depth", {f"depth {n}": v for n, v in sorted(seen.items())},
                   task.num_classes, task.n_val, "best validation accuracy of probe or walk",
                   "train longer (--epochs), tune --lr, or label more examples (per_class)")
    chosen = _rank({n: v for n, (v, _) in final.items()}, probe, final_nll)[0]
    return DepthSearchResult(
        depth=chosen, protocol=f"freeze:{chosen}", val_acc=final[chosen][0],
        test_acc=final[chosen][1], wall_time_s=time.perf_counter() - t_start,
        evidence=evidence, budget=plan.name, seeds=seeds, depths=candidates, epochs=E,
        estimated_exhaustive_s=exhaustive, notes=notes)
