"""``convnet``: a plain CNN in the spirit of Yosinski et al.'s 8-layer network.

Five conv-BN-ReLU stages (max-pooling after stages 1, 2 and 5, as AlexNet pools after
conv1, conv2 and conv5), then two fully connected layers, then the head: 7 transferable
blocks + head = 8 layers, so a Yosinski study has n = 1..7.
"""

from __future__ import annotations

from torch import nn

from transferlab.models.base import BlockModel

POOL_AFTER = (0, 1, 4)


def _conv_stage(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                               nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


def _spatial_after_pools(size: int, pools: int) -> int:
    for _ in range(pools):
        size = -(-size // 2)  # ceil_mode pooling
    return size


def convnet(num_classes: int, in_channels: int = 1, image_size: int = 16, width: int = 16,
            fc_width: int = 128, conv_stages: int = 5, dropout: float = 0.0) -> BlockModel:
    """Build the plain CNN.

    Args:
        width: channels of the first stage; later stages use ``2 * width``.
        fc_width: units in each of the two fully connected blocks.
        conv_stages: number of conv stages (pooling after stages 1, 2 and the last).
        dropout: dropout before each fully connected layer (0 disables it).
    Input (N, in_channels, image_size, image_size) -> logits (N, num_classes).
    """
    chans = [width] + [2 * width] * (conv_stages - 1)
    pools = {0, 1, conv_stages - 1} if conv_stages >= 3 else set(range(conv_stages))
    blocks: list[nn.Module] = []
    names: list[str] = []
    c_in = in_channels
    for i, c in enumerate(chans):
        blocks.append(_conv_stage(c_in, c, i in pools))
        names.append(f"conv{i + 1}")
        c_in = c
    side = _spatial_after_pools(image_size, len(pools))
    flat = c_in * side * side
    for j in range(2):
        fc: list[nn.Module] = [nn.Flatten()] if j == 0 else []
        if dropout:
            fc.append(nn.Dropout(dropout))
        fc += [nn.Linear(flat if j == 0 else fc_width, fc_width), nn.ReLU(inplace=True)]
        blocks.append(nn.Sequential(*fc))
        names.append(f"fc{conv_stages + j + 1}")
    head = nn.Linear(fc_width, num_classes)
    arch = {"arch": "convnet", "num_classes": num_classes, "in_channels": in_channels,
            "image_size": image_size, "width": width, "fc_width": fc_width,
            "conv_stages": conv_stages, "dropout": dropout}
    return BlockModel(blocks, head, names, arch)
