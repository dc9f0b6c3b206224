"""Transfer protocols, one module each, registered by name.

>>> get_protocol("freeze:3").config.depth
3
"""

from transferlab.protocols import (bn_adapt, finetune, freeze, frozen_stats, kinds,  # noqa: F401
                                   l2sp, layer_mix, linear_probe, probe, reinit)
from transferlab.protocols import keep_head  # noqa: F401  (continue*: transferlab.ensemble)
from transferlab.protocols import lp_ft  # noqa: F401
from transferlab.protocols.core import (KINDS, Plan, ProtocolConfig, check_model, make_plan,
                                        resolve_train)
from transferlab.protocols.registry import (Protocol, get_protocol, protocol_names,
                                            register_protocol, register_variant)

__all__ = ["KINDS", "Plan", "Protocol", "ProtocolConfig", "check_model", "get_protocol",
           "make_plan", "protocol_names", "register_protocol", "register_variant",
           "resolve_train"]
