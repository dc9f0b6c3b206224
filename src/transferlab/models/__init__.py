"""Models as ordered blocks + a head; built-in architectures and adapters."""

from __future__ import annotations

from collections.abc import Callable

from transferlab.errors import UserError
from transferlab.models.base import (BlockModel, block_of_parameter, blocks,
                                     reset_parameters)
from transferlab.models.convnet import convnet
from transferlab.models.efficientnet import efficientnet_lite0
from transferlab.models.heads import PooledHead, head_input, head_linear, replace_head
from transferlab.models.mlp import mlp
from transferlab.models.resnet import resnet
from transferlab.models.text import bert, hf_encoder
from transferlab.models.wrap import timm_model, torchvision_model, wrap

ARCHS: dict[str, Callable[..., BlockModel]] = {
    "convnet": convnet,
    "resnet": resnet,
    "mlp": mlp,
    "efficientnet_lite0": efficientnet_lite0,
    "bert": bert,
}


def build_model(arch: str, num_classes: int, in_channels: int = 1, image_size: int = 16,
                **arch_kwargs) -> BlockModel:
    """Build a built-in architecture by name (see ``ARCHS``)."""
    if arch not in ARCHS:
        raise UserError(f"arch={arch!r} is invalid: allowed are {', '.join(ARCHS)}; "
                        "pick one of these or wrap your own module with transferlab.models.wrap")
    try:
        return ARCHS[arch](num_classes=num_classes, in_channels=in_channels,
                           image_size=image_size, **arch_kwargs)
    except TypeError as exc:
        raise UserError(f"arch_kwargs={arch_kwargs!r} is invalid for arch={arch!r}: {exc}; "
                        f"see help(transferlab.models.{arch})") from exc


def rebuild(arch: dict) -> BlockModel:
    """Rebuild an architecture from ``BlockModel.arch`` (as stored in checkpoints)."""
    spec = dict(arch)
    return build_model(spec.pop("arch"), **spec)


__all__ = ["ARCHS", "BlockModel", "PooledHead", "bert", "block_of_parameter", "blocks",
           "build_model", "convnet", "efficientnet_lite0", "head_input", "head_linear",
           "hf_encoder", "mlp", "rebuild", "replace_head", "reset_parameters", "resnet",
           "timm_model", "torchvision_model", "wrap"]
