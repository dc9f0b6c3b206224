"""``linear-probe``: frozen "CNN codes" + a multinomial logistic regression.

The head is fitted on cached features by full-batch L-BFGS (a direct solver), with the
L2 penalty picked on the validation set when not given: seconds, not epochs of SGD.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.protocols.core import ProtocolConfig
from transferlab.protocols.registry import register_protocol

# Strongest penalty first: each fit warm-starts the next, weaker one (a regularisation path).
L2_GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


@dataclass
class LinearProbeConfig(ProtocolConfig):
    freeze_prefix: bool = True
    solver: str = "lbfgs"


def fit_logistic(x: torch.Tensor, y: torch.Tensor, linear: nn.Linear, l2: float,
                 max_iter: int = 100, warm_start: bool = False) -> None:
    """Fit ``linear`` (in place) to minimise mean cross-entropy + l2/2 * ||W||^2.

    x: (N, D) float features; y: (N,) int64 labels. The bias is not penalised. Starts from
    zero weights (so the result depends on the data alone) unless ``warm_start``.
    """
    if not warm_start:
        with torch.no_grad():
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()
    params = [p for p in linear.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, tolerance_grad=1e-6,
                            tolerance_change=1e-9, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 0.5 * l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)


register_protocol("linear-probe", LinearProbeConfig, takes_depth=False,
                  summary="every block frozen; logistic regression on cached features by "
                          "L-BFGS (L2 picked on validation)")
