"""``finetune`` (everything trains, backbone at a smaller lr) and ``scratch`` (baseline)."""

from dataclasses import dataclass
from typing import ClassVar

from transferlab.protocols.core import ProtocolConfig
from transferlab.protocols.registry import register_protocol


@dataclass
class FinetuneConfig(ProtocolConfig):
    freeze_prefix: bool = False
    # CS231n: fine-tune pretrained weights with a smaller lr (TrainConfig.lr_mult=None).
    default_lr_mult: ClassVar[float] = 0.1


@dataclass
class ScratchConfig(ProtocolConfig):
    depth: int | None = 0
    freeze_prefix: bool = False
    reinit_above: bool = True


register_protocol("finetune", FinetuneConfig, takes_depth=False,
                  summary="everything trains; pretrained blocks at lr_mult x lr (default 0.1), "
                          "optional layer-wise decay")
register_protocol("scratch", ScratchConfig, takes_depth=False,
                  summary="random initialisation, everything trains (the baseline)")
