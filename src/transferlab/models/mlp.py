"""``mlp``: fully connected blocks (Linear-ReLU) on flattened images or vectors."""

from __future__ import annotations

from torch import nn

from transferlab.errors import bad_value
from transferlab.models.base import BlockModel
from transferlab.models.standardize import Standardize


def mlp(num_classes: int, in_channels: int = 1, image_size: int = 16, width: int = 256,
        depth: int = 4, standardize: bool | None = None) -> BlockModel:
    """``depth`` blocks of Linear(width)-ReLU; the first flattens (N, C, H, W).

    ``standardize``: block 1 starts with a ``Standardize`` (per-input-feature mean and std of
    the training split, fitted when the model is first trained and saved with it). None (the
    default) turns it on for vector inputs (``image_size=1``, as ``Task.model_kwargs`` gives
    vector tasks) and off for images (already in [-1, 1]).
    """
    if standardize is None:
        standardize = image_size == 1
    if not isinstance(standardize, bool):
        raise bad_value("standardize", standardize, "True, False or None (on for vectors)")
    blocks: list[nn.Module] = []
    d_in = in_channels * image_size * image_size
    for i in range(depth):
        layers: list[nn.Module] = []
        if i == 0:
            layers.append(Standardize(d_in) if standardize else nn.Flatten())
        layers += [nn.Linear(d_in, width), nn.ReLU(inplace=True)]
        blocks.append(nn.Sequential(*layers))
        d_in = width
    arch = {"arch": "mlp", "num_classes": num_classes, "in_channels": in_channels,
            "image_size": image_size, "width": width, "depth": depth,
            "standardize": standardize}
    return BlockModel(blocks, nn.Linear(width, num_classes), [f"fc{i + 1}" for i in range(depth)],
                      arch)
