"""``freeze:n``: the first n blocks frozen, the rest fine-tuned from pretrained weights.

This is Gerace et al.'s "defrosting": n = L is a frozen feature extractor (the head
alone trains, by SGD), n = 0 fine-tunes everything at the same learning rate.
"""

from dataclasses import dataclass

from transferlab.protocols.core import ProtocolConfig
from transferlab.protocols.registry import register_protocol


@dataclass
class FreezeConfig(ProtocolConfig):
    freeze_prefix: bool = True
    reinit_above: bool = False


register_protocol("freeze", FreezeConfig, takes_depth=True,
                  summary="first n blocks frozen (BatchNorm statistics too), the rest "
                          "fine-tuned from the pretrained weights")
