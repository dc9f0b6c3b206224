"""Fitting the advisor's thresholds on measured cases, and scoring advice by regret.

A *case* is one (source, target) pair with the advisor's evidence and the measured mean
validation and test accuracy of every candidate (``transferlab study guide`` builds them)::

    {"name": ..., "k": 10, "retained": 0.93, "best_depth": 3, "num_blocks": 7,
     "nominal_similar": True, "val_acc": {"linear-probe": 0.90, ...},
     "acc": {"linear-probe": 0.91, "finetune (lr_mult 0.1)": ...}}

The regret of a rule on a case is ``max(acc) - acc[the rule's pick]`` (the pick is the
first candidate of the rule's order that was measured). ``fit`` chooses the thresholds on
VALIDATION accuracies (``val_acc``): a threshold fitted on test accuracies would be scored
on the numbers it was chosen from. ``evaluate`` then reports test regret beside it, never
used to choose. ``fit`` searches size_k, the
retained line (over the cuts between the cases' values) and, for each scenario, the
protocol family (``rules.FAMILIES``) of least regret on the cases that fall into it, for
the least total regret; equal fits are broken towards the middle of the optimal interval
(geometric for size_k), so the line sits between the cases it separates rather than on
one of them, and towards the guide's own table within a scenario.
"""

from __future__ import annotations

import itertools
import math

from transferlab.advise.rules import (ALWAYS_FINETUNE, FAMILIES, GUIDE_TABLE, Thresholds,
                                      candidate_set, guide_rule, rank, resolve, scenario)
from transferlab.errors import UserError

FIT_METRIC = "val_acc"  # what fit() chooses on: the cases' mean validation accuracies


def advised_label(case: dict, th: Thresholds) -> str:
    """The label the advisor picks for ``case`` under ``th`` (its first measured choice)."""
    size, sim = scenario(case["k"], case["retained"], th)
    L = case["num_blocks"]
    cands = candidate_set(L, case["best_depth"], 1, 0.05, probe_ok=case.get("probe_ok", True))
    for c in rank(cands, size, sim, case["best_depth"], L, th):
        if c.label in case["acc"]:
            return c.label
    raise KeyError(f"case {case.get('name')}: none of the advisor's candidates was measured")


def regret(case: dict, label: str, metric: str = "acc") -> float | None:
    """best measured ``case[metric]`` - that of ``label`` (None if it was not measured).
    ``metric``: "acc" (test, for scoring) or "val_acc" (for fitting)."""
    acc = case[metric]
    if label not in acc or acc[label] is None:
        return None
    return max(v for v in acc.values() if v is not None) - acc[label]


def evaluate(cases: list[dict], th: Thresholds) -> list[dict]:
    """Per case: best, and for the advisor, the guide's rule and always-finetune the pick,
    its accuracy and regret."""
    rows = []
    for c in cases:
        best = max(c["acc"], key=c["acc"].get)
        row = {"case": c["name"], "k": c["k"], "retained": c["retained"], "best": best,
               "best_acc": c["acc"][best]}
        picks = {"advisor": advised_label(c, th),
                 "guide": guide_rule(c["k"], c["nominal_similar"], c["num_blocks"], th),
                 "always_finetune": ALWAYS_FINETUNE}
        for name, label in picks.items():
            row[name] = label
            row[f"{name}_acc"] = c["acc"].get(label)
            row[f"{name}_regret"] = regret(c, label)
        rows.append(row)
    return rows


def summary(rows: list[dict], within: float = 0.01) -> dict:
    """Mean regret of each rule and the share of cases within ``within`` of the best."""
    out = {}
    for name in ("advisor", "guide", "always_finetune"):
        r = [x[f"{name}_regret"] for x in rows if x[f"{name}_regret"] is not None]
        out[name] = {"mean_regret": sum(r) / len(r) if r else None,
                     "within_1pt": sum(v <= within + 1e-12 for v in r) / len(r) if r else None,
                     "n": len(r)}
    return out


def _cuts(values: list[float]) -> list[tuple[float, float]]:
    """Intervals (lo, hi] between consecutive distinct values, plus one below and above."""
    v = sorted(set(values))
    return [(-math.inf, v[0])] + list(zip(v, v[1:])) + [(v[-1], math.inf)]


def _family_regret(case: dict, family: str) -> float:
    L = case["num_blocks"]
    cands = candidate_set(L, case["best_depth"], 1, 0.05, probe_ok=case.get("probe_ok", True))
    c = resolve(family, cands, case["best_depth"], L)
    r = regret(case, c.label, FIT_METRIC) if c is not None else None
    return math.inf if r is None else r


def _cell_table(cases: list[dict], size_k: int, retained: float) -> tuple[float, dict]:
    """(total regret, {cell: family}) with each scenario's family the one of least regret
    on the cases that fall into it (ties: the guide's, then FAMILIES order); cells without
    a case keep the guide's table."""
    probe_th = Thresholds(size_k=size_k, retained_min=retained)
    cells: dict[str, list[dict]] = {}
    for c in cases:
        size, sim = scenario(c["k"], c["retained"], probe_th)
        cells.setdefault(f"{size}_{sim}", []).append(c)
    table, total = dict(GUIDE_TABLE), 0.0
    for cell, members in cells.items():
        order = [GUIDE_TABLE[cell], *[f for f in FAMILIES if f != GUIDE_TABLE[cell]]]
        scores = [(sum(_family_regret(c, f) for c in members), i, f)
                  for i, f in enumerate(order)]
        best = min(scores)
        table[cell] = best[2]
        total += best[0]
    return total, table


def fit(cases: list[dict]) -> tuple[Thresholds, dict]:
    """The thresholds and scenario table of least total VALIDATION regret on ``cases``
    (each needs ``val_acc``); returns (thresholds, details)."""
    missing = [c.get("name") for c in cases if not c.get(FIT_METRIC)]
    if missing:
        raise UserError(f"calibration case(s) {missing} have no {FIT_METRIC!r}: allowed is a "
                        "case with the mean validation accuracy of each candidate (thresholds "
                        "are never fitted on test accuracy); rerun `transferlab study guide`")
    k_cuts = _cuts([c["k"] for c in cases])
    r_cuts = _cuts([c["retained"] for c in cases])
    scored = []
    for (ki, (klo, khi)), (ri, (rlo, rhi)) in itertools.product(enumerate(k_cuts),
                                                                  enumerate(r_cuts)):
        size_k, retained = _k_value(klo, khi), _r_value(rlo, rhi)
        total, table = _cell_table(cases, size_k, retained)
        scored.append((round(total, 9), ki, ri,
                       Thresholds(size_k=size_k, retained_min=retained, **table)))
    best_total = min(s[0] for s in scored)
    optimal = [s for s in scored if s[0] == best_total]
    # the middle of the optimal set on each axis (a line between the cases, not on one)
    ks = sorted({s[1] for s in optimal})
    k_mid = ks[len(ks) // 2]
    rs = sorted({s[2] for s in optimal if s[1] == k_mid})
    r_mid = rs[len(rs) // 2]
    pick = next(s for s in optimal if s[1] == k_mid and s[2] == r_mid)
    return pick[3], {"total_regret": best_total, "metric": FIT_METRIC, "n_cases": len(cases),
                     "optimal_settings": len(optimal), "settings_tried": len(scored)}


def _k_value(lo: float, hi: float) -> int:
    if math.isinf(lo):
        return max(2, int(hi))          # every case is large
    if math.isinf(hi):
        return int(lo) + 1              # every case is small
    return max(int(lo) + 1, min(int(hi), round(math.sqrt(lo * hi))))


def _r_value(lo: float, hi: float) -> float:
    if math.isinf(lo):
        return 0.0                      # every case is similar
    if math.isinf(hi):
        return 1.0                      # every case below 1 is dissimilar
    return (lo + hi) / 2
