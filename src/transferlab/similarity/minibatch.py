"""Minibatch CKA (Nguyen, Raghu, Kornblith 2021, "Do wide and deep networks learn the same
things?"), for activations that do not fit in memory at once.

For k minibatches of b samples each, with linear Gram matrices K_i, L_i of batch i,

    CKA_mb = mean_i HSIC_1(K_i, L_i) / sqrt(mean_i HSIC_1(K_i, K_i) * mean_i HSIC_1(L_i, L_i))

where HSIC_1 is the unbiased estimator of Song et al. 2012. Because every HSIC_1 is unbiased,
the averages converge to the population HSIC as k grows whatever b is, so CKA_mb converges
to the same value as full-batch debiased linear CKA. Memory is O(b^2) per layer, independent
of the total number of samples. (The biased estimator would not work here: its bias
depends on b and would not average out.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from transferlab.errors import UserError
from transferlab.similarity._validate import ArrayLike, as_float64
from transferlab.similarity.cka import DEBIASED_MIN_SAMPLES, centre_gram, gram_linear


def _as_layers(acts: ArrayLike | Sequence[ArrayLike], name: str,
               device: torch.device | None) -> tuple[list[torch.Tensor], bool]:
    """One matrix or a list of matrices -> (list of float64 tensors, was_a_list)."""
    is_list = isinstance(acts, (list, tuple))
    items = list(acts) if is_list else [acts]
    if not items:
        raise UserError(f"{name} is an empty list: pass one activation matrix (n, p) or a "
                        "non-empty list of them (one per layer)")
    out = []
    for i, a in enumerate(items):
        t = as_float64(a, f"{name}[{i}]" if is_list else name, device=device)
        device = t.device
        out.append(t)
    return out, is_list


def _u_centred(t: torch.Tensor) -> torch.Tensor:
    """Flattened U-centred linear Gram matrix of one batch: (n, p) -> (n * n,)."""
    return centre_gram(gram_linear(t), unbiased=True, inplace=True).reshape(-1)


class MinibatchCKA:
    """Accumulate unbiased linear-kernel HSIC over minibatches; read CKA at any time.

    ``update(X, Y)`` takes one batch: X is (b, p) or a list of such matrices (one per layer
    of network A), Y likewise for network B; the rows of every matrix must be the same b
    inputs. With lists, the result is the (len(X), len(Y)) matrix of CKA between every
    pair of layers; each layer's Gram matrix is computed once per batch.

    Learned attributes (after the first ``update``):
        hsic_xy_ (a, b): mean unbiased HSIC between X layers and Y layers over batches
        hsic_xx_ (a,), hsic_yy_ (b,): mean unbiased self-HSIC of each layer
        n_batches_, n_samples_seen_: counts; n_features_x_, n_features_y_: feature widths
        score_: CKA, a float for single matrices or an (a, b) array for lists; NaN where a
            layer had no variance (``result()`` raises instead).
    """

    def __init__(self) -> None:
        pass  # nothing to configure: the estimator is fixed (linear kernel, unbiased HSIC)

    def update(self, X: ArrayLike | Sequence[ArrayLike],
               Y: ArrayLike | Sequence[ArrayLike]) -> MinibatchCKA:
        """Add one minibatch (b >= 4 samples). Returns ``self``."""
        same = X is Y  # self-similarity of one network: compute each Gram once
        xs, x_list = _as_layers(X, "X", None)
        ys, y_list = (xs, x_list) if same else _as_layers(Y, "Y", xs[0].device)
        n = xs[0].shape[0]
        for name, layers, is_list in (("X", xs, x_list), ("Y", ys, y_list)):
            for i, t in enumerate(layers):
                if t.shape[0] != n:
                    label = f"{name}[{i}]" if is_list else name
                    raise UserError(f"{label} has {t.shape[0]} samples but X"
                                    f"{'[0]' if x_list else ''} has {n}: every matrix of a "
                                    "batch must hold the same inputs; pass aligned batches")
        if n < DEBIASED_MIN_SAMPLES:
            raise UserError(f"batch size n_samples={n} is invalid: the unbiased HSIC needs at "
                            f"least {DEBIASED_MIN_SAMPLES} samples per batch; use larger "
                            "batches or merge a small last batch into the previous one")
        widths_x = [t.shape[1] for t in xs]
        widths_y = [t.shape[1] for t in ys]
        if not hasattr(self, "n_batches_"):
            self._x_list, self._y_list = x_list, y_list
            self.n_features_x_, self.n_features_y_ = widths_x, widths_y
            self.hsic_xy_ = np.zeros((len(xs), len(ys)))
            self.hsic_xx_ = np.zeros(len(xs))
            self.hsic_yy_ = np.zeros(len(ys))
            self.n_batches_ = 0
            self.n_samples_seen_ = 0
        elif widths_x != self.n_features_x_ or widths_y != self.n_features_y_:
            raise UserError(f"this batch has feature widths X={widths_x}, Y={widths_y} but "
                            f"earlier batches had X={self.n_features_x_}, "
                            f"Y={self.n_features_y_}: pass the same layers in the same order "
                            "every batch, or start a new MinibatchCKA")

        scale = 1.0 / (n * (n - 3))  # <K_u, L_u> = n (n - 3) HSIC_1
        with torch.no_grad():
            gy = torch.stack([_u_centred(t) for t in ys])                    # (b_layers, n^2)
            hyy = (gy * gy).sum(dim=1) * scale
            if same:
                hxy = gy @ gy.T * scale
                hxx = hyy
            else:
                rows, hxx_l = [], []
                for t in xs:  # one X Gram at a time keeps memory at (len(Y) + 1) n^2
                    gx = _u_centred(t)
                    rows.append(gy @ gx * scale)
                    hxx_l.append((gx * gx).sum() * scale)
                hxy, hxx = torch.stack(rows), torch.stack(hxx_l)
        k = self.n_batches_ + 1
        # running means: stays well scaled however many batches arrive
        self.hsic_xy_ += (hxy.cpu().numpy() - self.hsic_xy_) / k
        self.hsic_xx_ += (hxx.cpu().numpy() - self.hsic_xx_) / k
        self.hsic_yy_ += (hyy.cpu().numpy() - self.hsic_yy_) / k
        self.n_batches_ = k
        self.n_samples_seen_ += n
        self.score_ = self._score()
        return self

    partial_fit = update  # scikit-learn's name for incremental fitting

    def _score(self) -> float | np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.sqrt(np.outer(np.where(self.hsic_xx_ > 0, self.hsic_xx_, np.nan),
                                     np.where(self.hsic_yy_ > 0, self.hsic_yy_, np.nan)))
            score = self.hsic_xy_ / denom
        if not (self._x_list or self._y_list):
            return float(score[0, 0])
        return score

    def result(self) -> float | np.ndarray:
        """CKA so far: a float, or an (len(X), len(Y)) array when lists were passed."""
        if not hasattr(self, "n_batches_"):
            raise UserError("MinibatchCKA has seen no batches: call update(X_batch, Y_batch) "
                            "at least once before result()")
        for name, h in (("X", self.hsic_xx_), ("Y", self.hsic_yy_)):
            dead = [i for i, v in enumerate(h) if not v > 0]
            if dead:
                raise UserError(f"{name} layer(s) {dead} have no variance across samples, so "
                                "CKA is 0/0 for them; check for dead or constant layers, or "
                                "drop them (score_ holds NaN there)")
        return self.score_
