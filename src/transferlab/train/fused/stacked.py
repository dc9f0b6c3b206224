"""Pieces of the fused engine that act on stacked (T, ...) tensors.

* ``mix_batchnorm``: a BatchNorm module whose mode differs between trials (trial a freezes
  the block, trial b trains it) gets a forward that computes both modes and selects per
  trial with a (T,) bool buffer; under ``vmap`` the selection is per trial.
* ``StackedOptimizer``: the plain loop's SGD (momentum, Nesterov when momentum > 0,
  weight decay before momentum, as ``torch.optim.SGD``) and AdamW (as
  ``torch.optim.AdamW``) on stacked tensors, with a (T,) learning rate and weight decay per
  tensor: a tensor that one trial freezes has lr 0 in that trial.
"""

from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F
from torch import nn

MIX_BUFFER = "fused_frozen"  # the (T,) bool buffer of a mixed-mode norm; not in results


def _mixed_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Train-mode and eval-mode BatchNorm of ``x``, selected by ``self.fused_frozen``.

    Under ``vmap`` each trial sees its own 0-dim flag and its own running statistics; the
    running statistics of a frozen trial stay unchanged (copied back), as in eval mode.
    """
    if not self.training:  # evaluation: every trial uses its running statistics
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)
    frozen = getattr(self, MIX_BUFFER)
    mean, var = self.running_mean.clone(), self.running_var.clone()
    trained = F.batch_norm(x, mean, var, self.weight, self.bias, True, self.momentum,
                           self.eps)  # updates mean/var in place
    # Eval mode reads copies: the buffers are written below, after autograd saw them.
    held = F.batch_norm(x, self.running_mean.clone(), self.running_var.clone(), self.weight,
                        self.bias, False, 0.0, self.eps)
    self.running_mean.copy_(torch.where(frozen, self.running_mean, mean))
    self.running_var.copy_(torch.where(frozen, self.running_var, var))
    self.num_batches_tracked.add_((~frozen).long())
    return torch.where(frozen, held, trained.to(held.dtype))


def mix_batchnorm(module: nn.modules.batchnorm._BatchNorm, frozen: torch.Tensor) -> None:
    """Give ``module`` per-trial modes: ``frozen`` (T,) bool, True = eval mode in that trial.

    The flag is registered as a buffer, so it is stacked with the other buffers; the module
    must be in train mode while training (its forward then selects per trial).
    """
    module.register_buffer(MIX_BUFFER, frozen.clone())
    module.forward = types.MethodType(_mixed_forward, module)


class StackedOptimizer:
    """SGD or AdamW over the trials' trained tensors, held in one flat (T, P) buffer.

    ``flat``: the trials' trainable parameters side by side (the engine's stacked
    parameters are views into it), so one step is a handful of kernels whatever the number
    of tensors (a GPU step of a small model is launch-bound). ``scale``: (T, P) lr multiplier
    per trial and element (0: that trial does not train it); ``decay``: (T, P) weight decay
    (0 for 1-D tensors, the plain loop's rule); ``lr``: (T,) base learning rates.
    ``step(grad, factor, active)`` applies one update with lr = lr * factor (the schedule) *
    scale * active, as ``torch.optim.SGD`` (momentum, Nesterov when momentum > 0, weight
    decay added to the gradient) or ``torch.optim.AdamW`` (decoupled decay) would.
    """

    def __init__(self, flat: torch.Tensor, scale: torch.Tensor, decay: torch.Tensor,
                 lr: torch.Tensor, kind: str = "sgd", momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.flat, self.scale, self.decay, self.lr = flat, scale, decay, lr
        self.kind, self.momentum, self.betas, self.eps = kind, momentum, betas, eps
        self.buf: torch.Tensor | None = None
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.steps = 0

    @torch.no_grad()
    def step(self, g: torch.Tensor, factor: float, active: torch.Tensor) -> None:
        """``g``: (T, P) gradient of ``flat``; ``active``: (T,) bool (False: no update)."""
        self.steps += 1
        p = self.flat
        lr = (self.lr * factor * active).unsqueeze(1) * self.scale  # (T, P)
        if self.kind == "adamw":
            b1, b2 = self.betas
            if self.m is None:
                self.m, self.v = torch.zeros_like(p), torch.zeros_like(p)
            p.mul_(1 - lr * self.decay)
            self.m.lerp_(g, 1 - b1)
            self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
            bc1, bc2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
            denom = (self.v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.sub_(lr / bc1 * self.m / denom)
            return
        g = g + self.decay * p
        if self.momentum:
            self.buf = g.clone() if self.buf is None else self.buf.mul_(self.momentum).add_(g)
            g = g.add(self.buf, alpha=self.momentum)  # Nesterov, as the plain loop's SGD
        p.sub_(lr * g)


def clip_per_trial(g: torch.Tensor, mask: torch.Tensor, max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_`` per trial, over the elements that trial trains.

    ``g``: (T, P) flat gradient, scaled in place; ``mask``: (T, P) 1.0 where trained.
    """
    total = (g.float().pow(2) * mask).sum(1)
    coef = (max_norm / (total.sqrt() + 1e-6)).clamp(max=1.0)
    g.mul_(coef.unsqueeze(1).to(g.dtype))
