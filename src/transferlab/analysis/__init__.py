"""Analyses of trained models: how weights moved between checkpoints (``weights``)."""

from transferlab.analysis.weights import (COLUMNS, KINDS, compare_weights, infer_kind,
                                          parameter_kinds)

__all__ = ["COLUMNS", "KINDS", "compare_weights", "infer_kind", "parameter_kinds"]
