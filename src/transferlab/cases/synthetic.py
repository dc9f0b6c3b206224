"""Synthetic cases: the defrost study's correlated hidden-manifold pair (Gerace et al.),
where the source-target relation is set by hand: correlation 0.5 (loosely related) and
0.99 (nearly the same task), at N = 20, 100 and 1000 labelled examples (k = 10, 50, 500
per class of the binary task).

Source: a 5-block MLP (width 64) trained on 10,000 source examples, as the defrost
study's quick budget. Split: ``hashed_split`` of the case name, fixed before any result.
"""

from __future__ import annotations

from transferlab.cases.core import CaseConfig, hashed_split
from transferlab.cases.registry import register_cases

GENERATOR = "dim=100:latent=20:hidden=100"
SOURCE = f"synthetic:role=source:n=10000:{GENERATOR}"
CORRELATIONS = (0.5, 0.99)
SIZES = (10, 50, 500)


def cases() -> list[CaseConfig]:
    out = []
    for c in CORRELATIONS:
        for k in SIZES:
            name = f"synthetic-c{c:g}-k{k}"
            out.append(CaseConfig(
                name=name, source_task=SOURCE,
                target=f"synthetic:role=target:eta={c:g}:q={c:g}:n=4000:{GENERATOR}", k=k,
                split=hashed_split(name), arch="mlp", arch_kwargs=(("width", 64), ("depth", 5)),
                pretrain_epochs=20, family=f"synthetic-c{c:g}"))
    return out


register_cases("synthetic", cases, "defrost's correlated hidden-manifold pair, correlation "
                                   "0.5 / 0.99, k = 10, 50, 500 per class (binary)")
