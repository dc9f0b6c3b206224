"""``resnet``: a small residual network (stem + residual stages as blocks)."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.models.base import BlockModel


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet(num_classes: int, in_channels: int = 1, image_size: int = 16, width: int = 16,
           stages: int = 3, blocks_per_stage: int = 1) -> BlockModel:
    """Stem + ``stages`` residual stages (channels double, resolution halves) + pooling.

    Blocks: ``stem``, ``stage1`` .. ``stageS``, ``pool``; the head is a linear layer.
    """
    del image_size  # global average pooling makes the model size-agnostic
    mods: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                           nn.BatchNorm2d(width), nn.ReLU(inplace=True))]
    names = ["stem"]
    c = width
    for s in range(stages):
        c_out = width * 2 ** s
        layers = [BasicBlock(c, c_out, 1 if s == 0 else 2)]
        layers += [BasicBlock(c_out, c_out, 1) for _ in range(blocks_per_stage - 1)]
        mods.append(nn.Sequential(*layers))
        names.append(f"stage{s + 1}")
        c = c_out
    mods.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    names.append("pool")
    arch = {"arch": "resnet", "num_classes": num_classes, "in_channels": in_channels,
            "width": width, "stages": stages, "blocks_per_stage": blocks_per_stage}
    return BlockModel(mods, nn.Linear(c, num_classes), names, arch)
