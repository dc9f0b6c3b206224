"""``mlp``: fully connected blocks (Linear-ReLU) on flattened images."""

from __future__ import annotations

from torch import nn

from transferlab.models.base import BlockModel


def mlp(num_classes: int, in_channels: int = 1, image_size: int = 16, width: int = 256,
        depth: int = 4) -> BlockModel:
    """``depth`` blocks of Linear(width)-ReLU; the first flattens (N, C, H, W)."""
    blocks: list[nn.Module] = []
    d_in = in_channels * image_size * image_size
    for i in range(depth):
        layers: list[nn.Module] = [nn.Flatten()] if i == 0 else []
        layers += [nn.Linear(d_in, width), nn.ReLU(inplace=True)]
        blocks.append(nn.Sequential(*layers))
        d_in = width
    arch = {"arch": "mlp", "num_classes": num_classes, "in_channels": in_channels,
            "image_size": image_size, "width": width, "depth": depth}
    return BlockModel(blocks, nn.Linear(width, num_classes), [f"fc{i + 1}" for i in range(depth)],
                      arch)
