"""Seeing any ``nn.Module`` as blocks + head, and adapters for torchvision and timm.

The user names each block by module path (``"layer1"``), or a group of consecutive
modules joined by ``+`` (``"conv1+bn1+relu+maxpool"``). The wrapped model applies the
blocks in order, flattens, and applies the head; with ``example_input`` we check that this
reproduces the module's own forward, because protocols and feature caching rely on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.models.base import BlockModel


def _lookup(module: nn.Module, path: str, what: str) -> nn.Module:
    named = dict(module.named_modules())
    if path not in named or path == "":
        paths = [p for p in named if p]
        shown = ", ".join(paths[:40]) + (f", ... ({len(paths)} in all)" if len(paths) > 40 else "")
        raise UserError(f"{what}={path!r} matches no module: allowed are the module paths of "
                        f"{type(module).__name__}: {shown}; pick names from this list")
    return named[path]


def wrap(module: nn.Module, blocks: Sequence[str], head: str,
         example_input: torch.Tensor | None = None, atol: float = 1e-5) -> BlockModel:
    """Wrap ``module`` as a ``BlockModel`` sharing its parameters.

    Args:
        blocks: module paths in forward order; ``"a+b"`` groups modules into one block.
        head: module path of the final classifier (its input is flattened).
        example_input: if given, (N, C, H, W); the wrapped forward must equal the module's.
    """
    if not blocks:
        raise UserError("blocks=[] is invalid: allowed is a non-empty list of module paths; "
                        "name at least one block")
    mods, names = [], []
    for spec in blocks:
        parts = [_lookup(module, p.strip(), "block") for p in spec.split("+")]
        mods.append(parts[0] if len(parts) == 1 else nn.Sequential(*parts))
        names.append(spec)
    wrapped = BlockModel(mods, _lookup(module, head, "head"), names, arch=None)
    if example_input is not None:
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                ref, got = module(example_input), wrapped(example_input)
            same = ref.shape == got.shape and torch.allclose(ref, got, atol=atol)
        except RuntimeError:  # e.g. a skipped module leaves the head a wrong-shaped input
            same = False
        finally:
            module.train(was_training)
        if not same:
            raise UserError(
                f"blocks={list(blocks)} do not reproduce {type(module).__name__}.forward: "
                "allowed are blocks that, applied in order then flattened into the head, give "
                "the same output; list every module on the forward path, in order")
    return wrapped


# Known block layouts, so users of these libraries need not name modules themselves.
_RESNET = ["conv1+bn1+relu+maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
_TIMM_RESNET = ["conv1+bn1+act1+maxpool", "layer1", "layer2", "layer3", "layer4", "global_pool"]


def torchvision_model(name: str, num_classes: int | None = None, weights: str | None = None
                      ) -> BlockModel:
    """A torchvision ResNet as a BlockModel (torchvision must import; GPU machine only here)."""
    try:
        import torchvision
    except Exception as exc:  # the CPU machine's wheel fails to load its extension
        raise UserError(f"torchvision does not import here ({exc.__class__.__name__}); "
                        "install a working torchvision to use torchvision models") from exc
    if not name.startswith("resnet"):
        raise UserError(f"name={name!r} is invalid: allowed are torchvision resnet* models; "
                        "for others call transferlab.models.wrap with your own block list")
    net = torchvision.models.get_model(name, weights=weights)
    model = wrap(net, _RESNET, "fc")
    if num_classes is not None:
        from transferlab.models.heads import replace_head
        replace_head(model, num_classes)
    return model


def timm_model(name: str, num_classes: int | None = None, pretrained: bool = False
               ) -> BlockModel:
    """A timm ResNet as a BlockModel (timm must import; GPU machine only here)."""
    try:
        import timm
    except Exception as exc:
        raise UserError(f"timm does not import here ({exc.__class__.__name__}); "
                        "install a working timm (and torchvision) to use timm models") from exc
    if not name.startswith("resnet"):
        raise UserError(f"name={name!r} is invalid: allowed are timm resnet* models; "
                        "for others call transferlab.models.wrap with your own block list")
    net = timm.create_model(name, pretrained=pretrained)
    model = wrap(net, _TIMM_RESNET, "fc")
    if num_classes is not None:
        from transferlab.models.heads import replace_head
        replace_head(model, num_classes)
    return model
