"""The case library: registered sets of decisions (source, target at k, candidates) with a
fixed dev / held-out split, for scoring decision rules (``benchmarks/bench_decisions.py``).

>>> from transferlab.cases import get_cases
>>> [c.name for c in get_cases("digits", split="dev")]
['digits04-k10', 'digits59-k10']
"""

from transferlab.cases import convnet, digits, effnet, minilm, synthetic  # noqa: F401
from transferlab.cases.core import (CONSTANT_RULES, DEFAULT_CANDIDATES, SPLITS, TIERS,
                                   CaseConfig, hashed_split)
from transferlab.cases.registry import case_sets, get_cases, register_cases

__all__ = ["CONSTANT_RULES", "DEFAULT_CANDIDATES", "SPLITS", "TIERS", "CaseConfig", "case_sets",
           "get_cases", "hashed_split", "register_cases"]
