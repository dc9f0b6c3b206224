"""``Standardize``: per-feature (x - mean) / std as the first step of a model's input path.

Vector data comes at any scale (one column in 1e-3, another in 1e3); SGD on such inputs
diverges or stalls. The statistics are part of the model (buffers), fitted once on the
training split of the first task the model is trained on (``fit_input_standardizers``,
called by ``api.transfer``) and saved with its weights, so a checkpoint applies the same
transform when it is loaded, transferred or evaluated.
"""

from __future__ import annotations

import torch
from torch import nn


def feature_scale(x: torch.Tensor) -> torch.Tensor:
    """(D,) standard deviation of the columns of (N, D) ``x``; 1 where a column is constant
    to float precision (a zero spread, or one below rounding of its magnitude), so that
    dividing by it never inflates rounding noise or divides by zero."""
    std = x.std(0, unbiased=False) if len(x) > 1 else torch.zeros_like(x[0])
    tiny = torch.finfo(x.dtype).eps * x.abs().amax(0)
    return torch.where(torch.isfinite(std) & (std > tiny), std, torch.ones_like(std))


class Standardize(nn.Module):
    """(N, D) -> (N, D): (x - mean) / std with buffers mean, std (D,) and ``fitted``.

    Until fitted it is the identity (mean 0, std 1). Inputs of any other rank are flattened
    to (N, D) first (an MLP's first block flattens anyway).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Statistics of ``x`` (N, ...), flattened to (N, D), computed in float64."""
        x = x.flatten(1).to(self.mean.device, torch.float64)
        self.mean.copy_(x.mean(0))
        self.std.copy_(feature_scale(x))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"{self.mean.numel()}, fitted={bool(self.fitted)}"


def fit_input_standardizers(model: nn.Module, x_train: torch.Tensor) -> int:
    """Fit every not-yet-fitted ``Standardize`` in ``model`` on ``x_train`` (the training
    split's raw inputs, (N, ...)); fitted ones keep their statistics (a pretrained model's
    input path is part of the model). Returns how many were fitted.

    Only a ``Standardize`` that reads the model's raw input can be fitted from ``x_train``:
    the built-in ``mlp`` puts it first in block 1.
    """
    fitted = 0
    for m in model.modules():
        if isinstance(m, Standardize) and not bool(m.fitted):
            if len(x_train) == 0:
                continue
            m.fit(x_train)
            fitted += 1
    return fitted
