"""``transferlab advise``: how to transfer *this* model to *this* data, with the evidence.

>>> import transferlab as tl
>>> adv = tl.advise("runs/src.safetensors", "mnist:classes=5-9:per_class=10")  # doctest: +SKIP
>>> adv.recommendation.protocol, adv.size, adv.similarity                       # doctest: +SKIP

The package: ``evidence`` (measuring the scenario), ``rules`` (the guide's scenarios,
thresholds, candidates, baselines), ``explain`` (the explanation), ``verify`` (the
successive-halving race on the sweep engine), ``report`` (advice.json, figures,
report.html), ``calibrate`` (fitting the thresholds on measured cases), ``core``
(``advise``). The module itself is callable: ``transferlab.advise(source, task, ...)`` is
``transferlab.advise.advise(...)``.
"""

import sys
import types

from transferlab.advise.budgets import BUDGETS, AdviseBudget, get_budget
from transferlab.advise.core import Advice, advise
from transferlab.advise.rules import Candidate, Thresholds

__all__ = ["Advice", "AdviseBudget", "BUDGETS", "Candidate", "Thresholds", "advise",
           "get_budget"]


class _CallableModule(types.ModuleType):
    """``import transferlab.advise`` binds this module as ``transferlab.advise``; calling
    it runs ``advise`` (so ``tl.advise(...)`` works whether or not it was imported)."""

    def __call__(self, *args, **kwargs):
        return advise(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
