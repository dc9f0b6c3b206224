"""Stored examples -> task tensors, per modality.

images (N, H, W, C) uint8 -> (N, C, H, W) float32 in [-1, 1] (optionally resized / channel
converted); vectors (N, D) float32 -> the same values as a tensor (exactly: no quantisation);
tokens (``TokenInputs``) -> moved to the device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.inputs import TokenInputs

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's "L" conversion


def images_to_tensor(x: np.ndarray, size: int | None = None, channels: int | None = None,
                     device: str | torch.device = "cpu", chunk: int = 8192) -> torch.Tensor:
    """(N, H, W, C) uint8 -> (N, C', H', W') float32 in [-1, 1] on ``device``.

    The uint8 data moves to the device first (4x less traffic); conversion, channel change
    and bilinear antialiased resizing run there, chunked to bound peak memory.
    """
    n, h, w, c = x.shape
    c_out = channels or c
    h_out, w_out = (size, size) if size else (h, w)
    out = torch.empty((n, c_out, h_out, w_out), dtype=torch.float32, device=device)
    luma = torch.tensor(_LUMA, device=device).view(1, 3, 1, 1)
    for s in range(0, n, chunk):
        xb = torch.from_numpy(np.ascontiguousarray(x[s:s + chunk])).to(device)
        xb = xb.permute(0, 3, 1, 2).float().div_(255)
        if c == 3 and c_out == 1:
            xb = (xb * luma).sum(1, keepdim=True)
        if (h_out, w_out) != (h, w):
            xb = F.interpolate(xb, size=(h_out, w_out), mode="bilinear", align_corners=False,
                               antialias=True)
        if c == 1 and c_out == 3:
            xb = xb.expand(-1, 3, -1, -1)
        out[s:s + len(xb)] = ((xb - 0.5) / 0.5).clamp_(-1, 1)
    return out


def to_inputs(x, modality: str, device: str | torch.device = "cpu"):
    """Selected examples of a ``Dataset`` -> the task's inputs on ``device`` (no resizing).

    Args:
        x: images (n, H, W, C) uint8, vectors (n, D) float32, or ``TokenInputs`` (n, L).
        modality: "image", "vector" or "tokens" (``Dataset.modality``).
    Returns: (n, C, H, W) float32 in [-1, 1]; (n, D) float32 with the very same values; or
        ``TokenInputs`` on ``device``.
    """
    if modality == "image":
        return images_to_tensor(x, device=device)
    if modality == "vector":
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    if modality == "tokens":
        if not isinstance(x, TokenInputs):
            raise TypeError(f"tokens must be TokenInputs, got {type(x).__name__}")
        return x.to(device)
    raise ValueError(f"modality={modality!r}: allowed are image, vector, tokens")
