"""Searches over transfer protocols: ``best_depth`` picks the freeze depth by validation.

>>> from transferlab.search import best_depth
>>> res = best_depth("runs/src.safetensors", "mnist:classes=5-9:per_class=100")  # doctest: +SKIP
>>> res.protocol, res.val_acc, res.test_acc                                       # doctest: +SKIP
"""

from transferlab.search.budgets import BUDGETS, SearchBudget, get_budget
from transferlab.search.depth import DepthSearchResult, best_depth

__all__ = ["BUDGETS", "DepthSearchResult", "SearchBudget", "best_depth", "get_budget"]
