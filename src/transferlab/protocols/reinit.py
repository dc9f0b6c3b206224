"""``reinit:n`` and ``reinit+:n``: Yosinski et al.'s transfer protocol.

The first n blocks are copied from the source, frozen (``reinit``, the paper's AnB/BnB)
or fine-tuned (``reinit+``, AnB+/BnB+); every block above n is re-initialised and trained
on the target.
"""

from dataclasses import dataclass

from transferlab.protocols.core import ProtocolConfig
from transferlab.protocols.registry import register_protocol


@dataclass
class ReinitConfig(ProtocolConfig):
    freeze_prefix: bool = True
    reinit_above: bool = True


@dataclass
class ReinitPlusConfig(ProtocolConfig):
    freeze_prefix: bool = False
    reinit_above: bool = True


register_protocol("reinit", ReinitConfig, takes_depth=True,
                  summary="Yosinski AnB: first n blocks copied and frozen, blocks above "
                          "re-initialised and trained")
register_protocol("reinit+", ReinitPlusConfig, takes_depth=True,
                  summary="Yosinski AnB+: first n blocks copied and fine-tuned, blocks above "
                          "re-initialised and trained")
