"""The advisor's memory: development cases, measured, and the nearest of them decides.

Each development case (``transferlab.cases``, split ``dev``) holds the advisor's evidence
(what ``advise`` can measure on a new task without fine-tuning anything) and, per protocol
family (``rules.FAMILIES``), its *validation* regret: the best candidate's mean validation
accuracy minus the family's. A new task is placed among them by its evidence:

    x = (log2 k, probe lift at the best depth, lift at the top, best depth / L, LogME at
         the top)      lift = (acc - chance) / (1 - chance)

standardised by the development cases' spread; its ``n_neighbors`` nearest cases vote:
the family of least summed validation regret over them is the advice, and the
explanation names those cases. ``CaseBase.fit`` chooses ``n_neighbors`` by leave-one-out
validation regret on the development cases; nothing here reads a test accuracy.

scikit-learn's contract: ``__init__`` stores, ``fit`` validates and returns ``self``,
learned attributes end in ``_``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.advise.rules import FAMILIES
from transferlab.errors import UserError, bad_value

PACKAGED = Path(__file__).with_name("casebase.json")
FEATURES = ("log2_k", "best_lift", "top_lift", "best_depth_frac", "top_logme")
NEIGHBOR_GRID = (1, 2, 3, 5, 8)


def features(ev: dict) -> list[float]:
    """The evidence vector of ``ev`` (an ``Evidence.to_dict()``), in ``FEATURES`` order."""
    chance = ev["chance"]
    lift = lambda a: (a - chance) / max(1e-9, 1 - chance)  # noqa: E731
    top = ev["per_depth"][-1]
    return [math.log2(max(1, ev["examples_per_class"])), lift(ev["best_acc"]),
            lift(ev["top_acc"]), ev["best_depth"] / max(1, ev["top_depth"]),
            float(top["logme"])]


@dataclass
class DevCase:
    """One development case as the case base keeps it."""

    name: str
    x: list[float]                 # features(evidence)
    regret: dict[str, float]       # family -> validation regret (best val acc - family's)


class CaseBase:
    """k-nearest development cases by evidence; the family of least validation regret."""

    def __init__(self, n_neighbors: int | None = None) -> None:
        self.n_neighbors = n_neighbors  # None: chosen by leave-one-out in fit

    def fit(self, cases: list[DevCase]) -> CaseBase:
        if len(cases) < 2:
            raise bad_value("cases", len(cases), "at least 2 development cases")
        for c in cases:
            missing = [f for f in FAMILIES if f not in c.regret]
            if missing:
                raise UserError(f"case {c.name!r} has no validation regret for {missing}: "
                                "allowed is a case with every family measured")
        self.cases_ = list(cases)
        X = np.asarray([c.x for c in cases], dtype=float)
        self.center_ = X.mean(0)
        self.scale_ = np.where(X.std(0) > 1e-9, X.std(0), 1.0)
        self.X_ = (X - self.center_) / self.scale_
        self.R_ = np.asarray([[c.regret[f] for f in FAMILIES] for c in cases], dtype=float)
        if self.n_neighbors is not None:
            self.n_neighbors_ = int(self.n_neighbors)
            self.loo_ = {}
        else:  # leave-one-out validation regret of each grid value; ties: fewer neighbours
            grid = [m for m in NEIGHBOR_GRID if m < len(cases)] or [1]
            self.loo_ = {m: float(self._loo(m)) for m in grid}
            self.n_neighbors_ = min(grid, key=lambda m: (round(self.loo_[m], 9), m))
        return self

    def _loo(self, m: int) -> float:
        total = 0.0
        for i in range(len(self.cases_)):
            keep = np.arange(len(self.cases_)) != i
            order = self._vote(self.X_[i], self.X_[keep], self.R_[keep], m)[0]
            total += self.R_[i, FAMILIES.index(order[0])]
        return float(total / len(self.cases_))

    @staticmethod
    def _vote(z: np.ndarray, X: np.ndarray, R: np.ndarray, m: int):
        d = np.sqrt(((X - z) ** 2).sum(1))
        near = np.argsort(d, kind="stable")[:m]
        score = R[near].sum(0)
        # least summed regret first; equal scores keep FAMILIES' order (a stable sort)
        order = [FAMILIES[j] for j in np.argsort(score, kind="stable")]
        return order, near, d[near]

    def rank(self, ev: dict) -> tuple[list[str], list[dict]]:
        """(families in order of preference, the neighbours it rests on: name, distance,
        the chosen family's validation regret there)."""
        z = (np.asarray(features(ev)) - self.center_) / self.scale_
        order, near, dist = self._vote(z, self.X_, self.R_, self.n_neighbors_)
        first = FAMILIES.index(order[0])
        rests_on = [{"case": self.cases_[j].name, "distance": float(dd),
                     "regret": float(self.R_[j, first])} for j, dd in zip(near, dist)]
        return order, rests_on

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "n_neighbors": self.n_neighbors_,
                "loo_regret": {str(k): v for k, v in self.loo_.items()},
                "cases": [{"name": c.name, "x": c.x, "regret": c.regret}
                          for c in self.cases_]}

    @classmethod
    def from_dict(cls, d: dict) -> CaseBase:
        if list(d.get("features", [])) != list(FEATURES):
            raise UserError(f"case base features {d.get('features')} differ from this "
                            f"version's {list(FEATURES)}: refit it (benchmarks/"
                            "bench_decisions.py fit)")
        cb = cls(n_neighbors=d["n_neighbors"]).fit(
            [DevCase(c["name"], c["x"], c["regret"]) for c in d["cases"]])
        cb.loo_ = {int(k): v for k, v in d.get("loo_regret", {}).items()}
        return cb


def load(path: str | Path | None = None) -> CaseBase | None:
    """The case base at ``path``, or the packaged one (None when this tree ships none).
    A ``path`` that does not exist is an error, not a silent fall-back to the guide's
    table."""
    p = Path(path) if path else PACKAGED
    if path and not p.exists():
        raise bad_value("cases", str(path), "a case base JSON file that exists",
                        "write one with benchmarks/bench_decisions.py fit --out PATH")
    if not p.exists():
        return None
    return CaseBase.from_dict(json.loads(p.read_text()))
