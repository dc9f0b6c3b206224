"""Similarity between every block of one model and every block of another.

Both models run in eval mode on the same inputs; each block's output is flattened to
(n_samples, features) (a conv output (N, C, H, W) becomes N x C*H*W, as Kornblith et al. do)
and compared with a metric from ``METRICS``. Text models (``TokenInputs`` in) pass ``Hidden``
states between blocks: each is mean-pooled over its unmasked tokens to (N, H) first, so
padding never enters the comparison. ``metric="minibatch_cka"`` instead streams the
outputs batch by batch through ``MinibatchCKA`` and never holds all activations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.inputs import TensorTuple
from transferlab.similarity import METRICS, get_metric
from transferlab.similarity.cka import (DEBIASED_MIN_SAMPLES, centre_gram,
                                        cka_from_centred_grams, gram_linear, gram_rbf)
from transferlab.similarity.minibatch import MinibatchCKA

MINIBATCH = "minibatch_cka"
# CKA variants whose per-block centred Gram matrices can be computed once and reused for
# every pair: name -> (Gram function, unbiased centring)
_GRAM_METRICS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], bool]] = {
    "linear_cka": (gram_linear, False),
    "debiased_linear_cka": (gram_linear, True),
    "rbf_cka": (gram_rbf, False),
}
_GRAM_CACHE_BYTES = 1 << 30  # above this the cached Grams would crowd memory: go pair by pair


def _check_model(model: nn.Module, name: str) -> None:
    from transferlab.models import blocks

    try:
        blocks(model)
    except UserError as exc:
        raise UserError(f"{name}: {exc}") from None


def _slices(n: int, batch_size: int) -> list[slice]:
    """Batches of ``batch_size``; a last batch under 4 samples joins the previous one, so
    every minibatch can carry the unbiased HSIC (which needs 4)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < DEBIASED_MIN_SAMPLES:
        starts.pop()
    return [slice(s, e) for s, e in zip(starts, starts[1:] + [n])]


def _rows(a, n: int) -> torch.Tensor:
    """A block output as (n, features): flattened, or mean-pooled over tokens for Hidden."""
    if isinstance(a, TensorTuple):
        from transferlab.models.pooling import pool_features

        return pool_features(a, "mean")
    return a.reshape(n, -1)


def _block_batches(models: list[nn.Module], x: torch.Tensor, batch_size: int, device,
                   progress: bool, to_cpu: bool) -> Iterator[list[list[torch.Tensor]]]:
    """For each batch: per model, each block's output flattened to (b, features) float32,
    on the CPU when ``to_cpu`` (outputs kept for later) else on ``device``."""
    from tqdm.auto import tqdm

    from transferlab.data.batching import trim_padding

    for sl in tqdm(_slices(len(x), batch_size), desc="block outputs", unit="batch",
                   disable=not progress, leave=False):
        xb = trim_padding(x[sl]).to(device)  # token batches: no all-padding columns
        outs = []
        for i, model in enumerate(models):
            try:
                acts = model.block_outputs(xb)
            except RuntimeError as exc:  # shape / channel mismatch between model and data
                raise UserError(f"model_{'ab'[i]} cannot run on inputs of shape "
                                f"{tuple(xb.shape[1:])} ({str(exc).splitlines()[0]}); pass "
                                "inputs shaped like the model's training task") from exc
            # copy=True: a later in-place op (ReLU(inplace=True)) must not change an output
            outs.append([_rows(a, len(xb)).to("cpu" if to_cpu else a.device, torch.float32,
                                              copy=True) for a in acts])
        yield outs


def _gram_matrix(acts_a: list[torch.Tensor], acts_b: list[torch.Tensor], labels_a: list[str],
                 labels_b: list[str], metric: str, progress: bool) -> np.ndarray:
    """CKA for every pair from per-block centred Grams, each computed once."""
    from tqdm.auto import tqdm

    gram, unbiased = _GRAM_METRICS[metric]

    def centred(t: torch.Tensor, label: str) -> torch.Tensor:
        t = t.double()
        k = gram(t, name=label) if gram is gram_rbf else gram(t)
        return centre_gram(k, unbiased=unbiased, inplace=True)

    grams_b = [centred(t, lab) for t, lab in zip(acts_b, labels_b)]
    out = np.empty((len(acts_a), len(acts_b)))
    for i, t in enumerate(tqdm(acts_a, desc=metric, disable=not progress, leave=False)):
        ka = centred(t, labels_a[i])
        for j, lb in enumerate(grams_b):
            out[i, j] = cka_from_centred_grams(ka, lb, (labels_a[i], labels_b[j]))
    return out


def _labels(model: nn.Module, side: str) -> list[str]:
    return [f"model_{side} block {name!r}" for name in model.block_names]


def block_similarity(model_a: nn.Module, model_b: nn.Module, x: torch.Tensor | np.ndarray,
                     metric: str | Callable = "linear_cka", batch_size: int = 256,
                     device: str | torch.device | None = None, progress: bool = False,
                     max_activation_mb: float = 4096) -> np.ndarray:
    """Similarity of every block of ``model_a`` with every block of ``model_b``.

    Args:
        model_a, model_b: ``BlockModel``s (may be the same object).
        x: inputs (N, C, H, W) (whatever the models take, e.g. ``TokenInputs`` for text
            encoders), N >= 2 (>= 4 for debiased).
        metric: a name in ``METRICS``, ``"minibatch_cka"``, or a function f(X, Y) -> float.
        batch_size: forward-pass batch; for ``minibatch_cka`` also the CKA minibatch.
        device: where the models run (default: model_a's device).
        max_activation_mb: refuse (with a fix) when the flattened float32 outputs of all
            blocks of both models for all N inputs would exceed this; not used by
            ``minibatch_cka``, whose memory does not grow with N.
    Returns: (len(model_a.blocks), len(model_b.blocks)) float64 array; row i, column j
        compares block i of A with block j of B.
    """
    _check_model(model_a, "model_a")
    _check_model(model_b, "model_b")
    if callable(metric):
        fn, name = metric, getattr(metric, "__name__", "custom")
    elif metric == MINIBATCH:
        fn, name = None, MINIBATCH
    elif metric in METRICS:
        fn, name = get_metric(metric), metric
    else:
        raise UserError(f"metric={metric!r} is invalid: allowed are {', '.join(METRICS)}, "
                        f"{MINIBATCH} or a function f(X, Y) -> float; pass one of those")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < (
            DEBIASED_MIN_SAMPLES if name == MINIBATCH else 1):
        raise UserError(f"batch_size={batch_size!r} is invalid: allowed is an integer >= "
                        f"{DEBIASED_MIN_SAMPLES if name == MINIBATCH else 1}; pass e.g. 256")
    x = x if isinstance(x, TensorTuple) else torch.as_tensor(x)
    need = DEBIASED_MIN_SAMPLES if name in (MINIBATCH, "debiased_linear_cka") else 2
    if len(x.shape) < 2 or len(x) < need:
        raise UserError(f"x has shape {tuple(x.shape)}: allowed is a batch of at least {need} "
                        f"inputs for metric={name!r}; pass more samples")
    first = next(iter(model_a.parameters()), None)
    if device is None:
        device = first.device if first is not None else torch.device("cpu")
    if isinstance(x, torch.Tensor) and x.is_floating_point() and first is not None:
        x = x.to(first.dtype)  # float64 numpy inputs into a float32 model
    models = [model_a] if model_b is model_a else [model_a, model_b]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        with torch.no_grad():
            batches = _block_batches(models, x, batch_size, device, progress,
                                     to_cpu=name != MINIBATCH)
            if name == MINIBATCH:
                est = MinibatchCKA()
                for outs in batches:
                    est.update(outs[0], outs[-1])
                try:
                    return np.asarray(est.result(), dtype=np.float64)
                except UserError as exc:
                    raise UserError(f"{exc} (X = model_a blocks {model_a.block_names}, "
                                    f"Y = model_b blocks {model_b.block_names})") from None
            acts: list[list[list[torch.Tensor]]] = []
            for outs in batches:
                if not acts:
                    per_sample = sum(a.shape[1] for o in outs for a in o) * 4
                    total_mb = per_sample * len(x) / 2**20
                    if total_mb > max_activation_mb:
                        raise UserError(
                            f"x has {len(x)} samples: their block outputs need about "
                            f"{total_mb:.0f} MB, above max_activation_mb={max_activation_mb}; "
                            f"pass fewer samples, metric='{MINIBATCH}' (bounded memory), or "
                            "a larger max_activation_mb")
                    acts = [[[a] for a in o] for o in outs]
                else:
                    for store, o in zip(acts, outs):
                        for lst, a in zip(store, o):
                            lst.append(a)
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
    full = [[torch.cat(parts).cpu() for parts in store] for store in acts]
    acts_a, acts_b = full[0], full[-1]
    for acts_side in full:
        for t in acts_side:  # NaN/inf from a diverged model: one clear error, not one per pair
            if not bool(torch.isfinite(t).all()):
                raise UserError("a block output contains NaN or inf values: the model has "
                                "diverged or the inputs are out of range; check the checkpoint")
    labels_a, labels_b = _labels(model_a, "a"), _labels(model_b, "b")
    n = len(x)
    if name in _GRAM_METRICS and fn is METRICS[name] and \
            (len(acts_b) + 1) * n * n * 8 <= _GRAM_CACHE_BYTES:
        return _gram_matrix(acts_a, acts_b, labels_a, labels_b, name, progress)
    out = np.empty((len(acts_a), len(acts_b)))
    for i, a in enumerate(acts_a):
        for j, b in enumerate(acts_b):
            try:
                out[i, j] = fn(a, b)
            except UserError as exc:  # say which blocks: "X"/"Y" alone is not enough here
                raise UserError(f"{labels_a[i]} vs {labels_b[j]}: {exc}") from None
    return out
