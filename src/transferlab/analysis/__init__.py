"""Analyses of trained models: how weights moved between checkpoints (``weights``)."""

from transferlab.analysis.weights import (COLUMNS, KINDS, compare_weights, group_deltas,
                                          infer_kind, initial_state, mean_pairwise_cosine,
                                          parameter_kinds)

__all__ = ["COLUMNS", "KINDS", "compare_weights", "group_deltas", "infer_kind",
           "initial_state", "mean_pairwise_cosine", "parameter_kinds"]
