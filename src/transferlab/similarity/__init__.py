"""Representation similarity between two sets of activations, and between models block by block.

Every metric is a function ``metric(X, Y) -> float`` of X (n_samples, p) and Y (n_samples, q),
numpy or torch, with the rows of X and Y the same inputs; see docs/similarity.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transferlab.errors import UserError
from transferlab.similarity.cca import cca_correlations, pwcca, svcca
from transferlab.similarity.cka import debiased_linear_cka, linear_cka, rbf_cka
from transferlab.similarity.knn import knn_overlap
from transferlab.similarity.minibatch import MinibatchCKA
from transferlab.similarity.procrustes import procrustes_distance

Metric = Callable[[Any, Any], float]

METRICS: dict[str, Metric] = {
    "linear_cka": linear_cka,
    "rbf_cka": rbf_cka,
    "debiased_linear_cka": debiased_linear_cka,
    "svcca": svcca,
    "pwcca": pwcca,
    "procrustes": procrustes_distance,
    "knn_overlap": knn_overlap,
}

# Metrics where lower means more similar (plots flip their colour scale for these).
DISTANCES = frozenset({"procrustes"})


def get_metric(name: str) -> Metric:
    """The metric function registered under ``name`` (see ``METRICS``)."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise UserError(f"metric={name!r} is invalid: allowed are {', '.join(METRICS)}; "
                        "pass one of those names") from None


__all__ = ["METRICS", "DISTANCES", "MinibatchCKA", "get_metric", "linear_cka", "rbf_cka",
           "debiased_linear_cka", "svcca", "pwcca", "cca_correlations", "procrustes_distance",
           "knn_overlap"]
