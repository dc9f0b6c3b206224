"""``bn-only``, ``norm-only``, ``conv-only``, ``head-only``: one kind of parameter trains.

These are the few-shot study's choices: fine-tune the BatchNorm affine parameters (or
those of every normalisation layer, LayerNorm included, for transformers), or the
convolution/linear/attention weights, or nothing but the new head. The head always
trains, since the target's classes are new. A kind the model lacks is an error
(``bn-only`` on a LayerNorm model names ``norm-only``).
"""

from dataclasses import dataclass

from transferlab.protocols.core import ProtocolConfig
from transferlab.protocols.registry import register_protocol


@dataclass
class BNOnlyConfig(ProtocolConfig):
    freeze_prefix: bool = False
    train_kinds: str = "bn"


@dataclass
class NormOnlyConfig(ProtocolConfig):
    freeze_prefix: bool = False
    train_kinds: str = "norm"


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
register_protocol("norm-only", NormOnlyConfig, takes_depth=False,
                  summary="only the scales and shifts of normalisation layers (BatchNorm, "
                          "LayerNorm, GroupNorm, ...) and the head train; running statistics "
                          "adapt to the target")
register_protocol("conv-only", ConvOnlyConfig, takes_depth=False,
                  summary="only convolution, linear and attention-projection weights (and the "
                          "head) train; norm scales and shifts stay as pretrained, "
                          "BatchNorm statistics adapt")
register_protocol("head-only", HeadOnlyConfig, takes_depth=False,
                  summary="every block frozen; the new head trains by SGD on cached features")
