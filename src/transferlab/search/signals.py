"""What the depth search measures besides its trials: the probe profile, the cost model
of the exhaustive sweep it is capped against, and test scoring after the choice."""

from __future__ import annotations

import time


def project_cost(n: int, cost: dict[int, float], num_blocks: int) -> float:
    """Projected wall time of ``freeze:n`` from the walk's measured depths: linear between
    the measured neighbours; below the shallowest measured depth m, m's time plus the
    mean extra time per trained block seen so far (with one measurement, m's time shared
    out over its trained blocks and head); above the deepest, the deepest's time. Shallow
    conv blocks cost more than deep ones, so this is low, and the cap strict."""
    if n in cost:
        return cost[n]
    done = sorted(cost)
    lo = [d for d in done if d < n]
    hi = [d for d in done if d > n]
    if lo and hi:
        a, b = lo[-1], hi[0]
        return cost[a] + (cost[b] - cost[a]) * (n - a) / (b - a)
    if lo:
        return cost[lo[-1]]
    m = done[0]
    if len(done) > 1:
        per_block = max(cost[m] - cost[done[-1]], 0.0) / (done[-1] - m)
    else:
        per_block = cost[m] / (num_blocks - m + 1)
    return cost[m] + per_block * (m - n)


def exhaustive_cost(candidates, cost, num_blocks: int, n_seeds: int, test_cost: dict) -> float:
    """The exhaustive sweep's estimated wall time: every candidate depth with every seed
    (measured depths as measured on the selection view, the rest projected), plus the
    test split's evaluation per trial, from the measured per-example block times."""
    return n_seeds * sum((cost[n] if n in cost else project_cost(n, cost, num_blocks))
                         + test_cost.get(n, 0.0) for n in candidates)


def loose_probe(holder, feats: dict, view, l2: float | None) -> float:
    """Validation accuracy of the probe's L2 path (``linear_probe.L2_GRID`` strongest
    first, warm-started, ``PATH_ITERS`` L-BFGS iterations each; the best value), without
    the polishing fit: the signal at about 40% of ``fit_probe``'s cost (the fit, not the
    features, was measured to dominate a probe's time)."""
    from transferlab.protocols.linear_probe import (L2_GRID, PATH_ITERS, LogisticPath,
                                                    linear_head_input)

    linear, x_tr = linear_head_input(holder, feats["train"])
    _, x_va = linear_head_input(holder, feats["val"])
    # Plain (unpreconditioned) loose fits: the depth search's rules and its benchmark were
    # measured on them.
    path = LogisticPath(x_tr.float(), view.y_train, linear.out_features, precondition=False)
    best = 0.0
    for lam in (L2_GRID if l2 is None else (l2,)):
        path.fit(lam, max_iter=PATH_ITERS)
        pred = path.logits(x_va.float()).argmax(1)
        best = max(best, (pred == view.y_val).float().mean().item())
    return best


def probe_profile(model, view, cfg, cache, seed: int, evidence: list) -> tuple[dict, dict]:
    """``probe:n`` validation accuracy at every depth n = 1..L (the probe protocol's head
    and pooling on the cached prefix features, a loose fit, see ``loose_probe``), and
    each depth's feature
    time (block n's forward on the view's splits, from the cached depth n-1)."""
    import copy
    from types import SimpleNamespace

    import torch
    from torch import nn

    from transferlab.models.heads import replace_head
    from transferlab.models.pooling import PooledHead, pool_features
    device = cfg.resolved_device()
    net = copy.deepcopy(model).to(device).eval()
    view = view.to(device)
    probe, feature_time = {}, {}
    torch.manual_seed(seed)
    for n in range(1, net.num_blocks + 1):
        t0 = time.perf_counter()
        f = cache.get_or_compute(net, view, n, cfg.channels_last)
        feature_time[n] = time.perf_counter() - t0
        if n == net.num_blocks:  # probe:L is linear-probe: the model's own head
            holder = SimpleNamespace(head=copy.deepcopy(net.head), arch=None)
            replace_head(holder, view.num_classes)
        else:
            width = pool_features(f["train"][:1], "avg").shape[1]
            holder = SimpleNamespace(head=PooledHead("avg", nn.Linear(width, view.num_classes,
                                                                     device=device)))
        val = loose_probe(holder, f, view, cfg.l2)
        probe[n] = val
        evidence.append({"depth": n, "stage": "probe",
                         "measure": f"probe:{n} val_acc (L2 path)",
                         "value": val, "epochs": 0, "seeds": [seed],
                         "compute_s": time.perf_counter() - t0})
    return probe, feature_time


def test_accuracy(model, task, depth: int, cfg, cache) -> float:
    """Test accuracy of a trained ``freeze:depth`` model, from the cached prefix features
    (the same path ``transfer`` evaluates by)."""
    from transferlab.train import evaluate
    from transferlab.train.loop import to_layout

    device = cfg.resolved_device()
    model = model.to(device)
    if cfg.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    task = task.to(device)
    feats = cache.get_or_compute(model, task, depth, cfg.channels_last) if depth else \
        {"test": task.x_test}
    acc, _ = evaluate(model, to_layout(feats["test"], cfg), task.y_test, depth, cfg=cfg)
    return acc
