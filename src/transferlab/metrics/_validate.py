"""Shape and value checks shared by the metric functions: one ``UserError`` per problem."""

from __future__ import annotations

import numpy as np
import torch

from transferlab.errors import UserError, bad_value


def as_tensor(x, name: str, dtype=torch.float64) -> torch.Tensor:
    """``x`` (tensor, ndarray or nested list) as a CPU tensor of ``dtype``."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
    else:
        t = torch.as_tensor(np.asarray(x))
    return t.to(dtype)


def check_probs(probs, labels, members: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``probs`` (N, C), or (M, N, C) when ``members``, and ``labels`` (N,) checked.

    Probabilities must be finite, in [0, 1], and sum to 1 per row (to 1e-3: float32
    softmax outputs); labels integers in [0, C).
    """
    p = as_tensor(probs, "probs")
    want = 3 if members else 2
    shape = "(M members, N samples, C classes)" if members else "(N samples, C classes)"
    if p.dim() != want:
        raise bad_value("probs", f"shape {tuple(p.shape)}", f"a {want}-D array {shape}",
                        "stack the members' softmax outputs" if members else
                        "pass one model's softmax outputs")
    y = as_tensor(labels, "labels", torch.float64)
    if y.dim() != 1 or len(y) != p.shape[-2]:
        raise bad_value("labels", f"shape {tuple(y.shape)}", f"a 1-D array of {p.shape[-2]} "
                        "labels (one per sample of probs)")
    if len(y) == 0:
        raise bad_value("labels", "an empty array", "at least one sample")
    if not bool(torch.isfinite(p).all()):
        raise UserError("probs holds NaN or inf: allowed are finite probabilities; check the "
                        "model's outputs (a diverged member?)")
    if bool((p < 0).any()) or bool((p > 1).any()) or \
            not bool(torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype), atol=1e-3, rtol=0)):
        raise UserError("probs are not probabilities: allowed are rows in [0, 1] that sum to 1; "
                        "apply softmax to the logits first")
    if bool((y != y.round()).any()) or bool((y < 0).any()) or bool((y >= p.shape[-1]).any()):
        raise bad_value("labels", "values outside 0..C-1", f"integers in 0..{p.shape[-1] - 1}")
    return p, y.long()
