"""Horizontally fused training: T trials of one architecture trained as one model.

On a GPU a transfer trial of a small convnet is a few dozen kernel launches of
microseconds each per step, so one trial at a time measures Python and launch overhead,
not arithmetic. Here T trials that share an architecture and a protocol *shape* are
trained as one model whose parameters carry a leading trial dimension (HFTA, Wang et al.,
MLSys 2021): one step of all T is one ``torch.func.vmap(functional_call(...))`` forward
and one backward, and the optimiser runs on the stacked tensors.

Public entry point: ``fit_fused`` (engine.py), per-trial settings ``FusedTrial``,
per-trial results ``FusedTrialResult``. This floor (train/) takes protocol *objects*
(``transferlab.protocols.get_protocol(...)``) from the caller and imports nothing from
``transferlab.protocols``; ``transferlab.fused.transfer_fused`` is the Task-level entry
point above it.
"""

from transferlab.train.fused.engine import FusedTrial, fit_fused
from transferlab.train.fused.parts import check_fusable
from transferlab.train.fused.results import FusedTrialResult

__all__ = ["FusedTrial", "FusedTrialResult", "check_fusable", "fit_fused"]
