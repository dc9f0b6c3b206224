"""Transfer protocols, one module each, registered by name.

>>> get_protocol("freeze:3").config.depth
3
"""

from transferlab.protocols import finetune, freeze, kinds, linear_probe, reinit  # noqa: F401
from transferlab.protocols.core import KINDS, Plan, ProtocolConfig, make_plan
from transferlab.protocols.registry import (Protocol, get_protocol, protocol_names,
                                            register_protocol)

__all__ = ["KINDS", "Plan", "Protocol", "ProtocolConfig", "get_protocol", "make_plan",
           "protocol_names", "register_protocol"]
