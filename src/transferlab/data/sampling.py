"""Which training-split examples of each class a task uses for training and validation.

The rules (every class is drawn from its own permutation, seeded by (seed, class[, episode]),
so a class's examples do not depend on which other classes the task has):

* **full data** (no per_class / fraction): ``val_fraction`` (default 10%) of each class
  validates, the rest trains, as before the k-shot rework;
* **per_class=k**: the trial sees exactly k labelled examples per class *in total*. The k are
  the first k of the permutation; the last ``floor(k/4)`` of them validate when k >= 4 (with an
  explicit ``val_fraction`` f: round(f * k), at least 1 when f > 0), and with k < 4 there is
  no validation split: training keeps its last epoch and the linear probe its first L2 on the
  grid (the strongest). Training sets are nested in k (the first k - floor(k/4) examples);
* **fraction=p**: the first round(p * n) examples of each class, validation carved inside
  them with ``val_fraction`` (default 10%), never from outside the fraction;
* **val_per_class=v** (explicit): v examples validate, drawn *before* and besides the
  per_class / fraction sample (the pre-rework rule; the Yosinski study uses it);
* **episode=e** selects the draw: e = 0 is the historical stream, e > 0 another permutation
  per (seed, class, e). The official test split is never subsampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from transferlab.data.spec import MIN_SHOTS_FOR_VAL, TaskSpec
from transferlab.errors import bad_value

_SAMPLING_SALT = 7  # keeps task sampling streams apart from the seed-0 test carving streams


def class_permutation(y: np.ndarray, c: int, seed: int, episode: int = 0) -> np.ndarray:
    """Indices of class ``c`` in ``y`` (N,), in the order the task draws them."""
    stream = [seed, c, _SAMPLING_SALT] + ([episode] if episode else [])
    return np.random.default_rng(stream).permutation(np.flatnonzero(y == c))


def held_out_count(fraction: float, n: int) -> int:
    """round(fraction * n), at least 1 when fraction > 0, leaving at least one to train."""
    if n < 2:
        return 0
    k = int(np.floor(fraction * n + 0.5))
    return min(max(k, 1 if fraction > 0 else 0), n - 1)


def shots_val_count(k: int, val_fraction: float | None) -> int:
    """How many of the k labelled examples of a k-shot class validate (see module doc)."""
    if val_fraction is not None:
        return held_out_count(val_fraction, k)
    return k // 4 if k >= MIN_SHOTS_FOR_VAL else 0


def _one_class(perm: np.ndarray, name: str, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of one class from its permutation ``perm``."""
    n = len(perm)
    if spec.val_per_class is not None:  # explicit: drawn besides the training sample
        v = spec.val_per_class
        if v >= n:
            raise bad_value("val_per_class", v, f"fewer than the {n} training examples of class "
                            f"{name!r}", "ask for fewer validation examples")
        val, rest = perm[:v], perm[v:]
        if spec.per_class is not None:
            if spec.per_class > len(rest):
                raise bad_value("per_class", spec.per_class, f"at most {len(rest)} for class "
                                f"{name!r} ({n} training examples, {v} held out for "
                                "validation)", "ask for fewer shots or a smaller validation set")
            rest = rest[:spec.per_class]
        elif spec.fraction is not None:
            rest = rest[:max(1, int(np.floor(spec.fraction * len(rest) + 0.5)))]
        return rest, val
    if spec.per_class is not None:
        k = spec.per_class
        if k > n:
            raise bad_value("per_class", k, f"at most {n} for class {name!r} ({n} training "
                            "examples)", "ask for fewer shots")
        support = perm[:k]
        n_val = shots_val_count(k, spec.val_fraction)
    elif spec.fraction is not None:
        support = perm[:max(1, int(np.floor(spec.fraction * n + 0.5)))]
        n_val = held_out_count(spec.effective_val_fraction, len(support))
    else:  # full data: validation first, as before the rework
        n_val = held_out_count(spec.effective_val_fraction, n)
        return perm[n_val:], perm[:n_val]
    return support[:len(support) - n_val], support[len(support) - n_val:]


def sample_train(y: np.ndarray, class_ids: Sequence[int], names: Sequence[str],
                 spec: TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices) into the dataset's train split ``y`` (N,), both sorted."""
    train, val = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for c in class_ids:
        tr, va = _one_class(class_permutation(y, c, spec.seed, spec.episode), names[c], spec)
        train.append(tr)
        val.append(va)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
