"""``bn-only``, ``conv-only``, ``head-only``: only one kind of parameter trains.

These are the few-shot study's choices: fine-tune the BatchNorm affine parameters, or the
convolution/linear weights, or nothing but the new head. The head always trains, since
the target's classes are new.
"""

from dataclasses import dataclass

from transferlab.protocols.core import ProtocolConfig
from transferlab.protocols.registry import register_protocol


@dataclass
class BNOnlyConfig(ProtocolConfig):
    freeze_prefix: bool = False
    train_kinds: str = "bn"


@dataclass
class ConvOnlyConfig(ProtocolConfig):
    freeze_prefix: bool = False
    train_kinds: str = "weights"


@dataclass
class HeadOnlyConfig(ProtocolConfig):
    freeze_prefix: bool = True


register_protocol("bn-only", BNOnlyConfig, takes_depth=False,
                  summary="only BatchNorm scales and shifts (and the head) train; running "
                          "statistics adapt to the target")
register_protocol("conv-only", ConvOnlyConfig, takes_depth=False,
                  summary="only convolution and linear weights (and the head) train; BatchNorm "
                          "scales and shifts stay as pretrained, its statistics adapt")
register_protocol("head-only", HeadOnlyConfig, takes_depth=False,
                  summary="every block frozen; the new head trains by SGD on cached features")
