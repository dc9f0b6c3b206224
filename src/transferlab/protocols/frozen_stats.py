"""``<protocol>-frozen-stats``: the same protocol with normalisation statistics frozen.

By default a block that trains keeps its BatchNorm layers in train mode, so their running
statistics adapt to the target (measured: conv-only collapses to chance otherwise on
MNIST). The standard few-shot choice is the other one: with 5 examples per class, batch
statistics are noise, so BatchNorm stays in eval mode with the pretrained statistics.
``freeze_norm_stats=True`` selects it; these registered names make it a string a sweep
can ask for (``protocol: [finetune, finetune-frozen-stats]``). From Python,
``get_protocol("finetune", freeze_norm_stats=True)`` does the same.
"""

from transferlab.protocols import finetune, freeze, kinds, l2sp  # noqa: F401  (bases first)
from transferlab.protocols.registry import register_variant

BASES = ("finetune", "freeze", "bn-only", "norm-only", "conv-only", "l2sp")
NAMES = tuple(register_variant(b, "frozen-stats", "normalisation statistics frozen (eval "
                               "mode) in the blocks that train", freeze_norm_stats=True)
              for b in BASES)
