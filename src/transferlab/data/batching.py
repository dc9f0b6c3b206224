"""In-memory batching and augmentation on the tensors' own device.

The tasks here fit in memory, so a DataLoader (worker processes, per-sample collation) only
adds overhead. Randomness is drawn on the CPU from the caller's ``torch.Generator`` so the
order and the augmentation are reproducible whatever the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from transferlab.errors import bad_value
from transferlab.inputs import Batched, Hidden, TensorTuple, TokenInputs


def trim_padding(x: Batched) -> Batched:
    """Dynamic padding: drop the trailing sequence positions that are padding in every row.

    ``TokenInputs`` (N, L) / ``Hidden`` (N, L, H) -> the same with L' <= L, L' the last
    position any row uses (at least 1); tensors and other inputs are returned unchanged.
    Only trailing positions go, so position embeddings and token order are unaffected, and a
    masked position never changes an unmasked one: the model's outputs on real tokens are
    the same as on the padded batch.
    """
    if isinstance(x, TokenInputs):
        mask = x.attention_mask
    elif isinstance(x, Hidden):
        mask = x.mask
    else:
        return x
    length = int(mask.shape[1])
    if length == 0 or len(mask) == 0:
        return x
    used = mask.ne(0).any(0)  # (L,)
    last = int((torch.arange(1, length + 1, device=mask.device) * used).max())  # one sync
    keep = max(last, 1)
    if keep == length:
        return x
    return type(x)(**{k: t[:, :keep] for k, t in x.tensors().items()})


def sequence_lengths(x: Batched) -> torch.Tensor | None:
    """(N,) number of unmasked positions of ``TokenInputs`` / ``Hidden``; None for tensors."""
    if isinstance(x, TokenInputs):
        return x.attention_mask.ne(0).sum(1)
    if isinstance(x, Hidden):
        return x.mask.ne(0).sum(1)
    return None


def length_order(x: Batched) -> torch.Tensor | None:
    """Indices that sort token sequences by length (stable), or None for tensors.

    Consecutive batches of ``x[order]`` hold sequences of similar length, so trimming each
    batch to its longest sequence (``trim_padding``) leaves almost no padding to compute on.
    """
    lengths = sequence_lengths(x)
    return None if lengths is None else torch.sort(lengths.cpu(), stable=True).indices


# Training batches of token sequences: a shuffled stream is cut into pools of this many
# batches, each pool sorted by length, and the resulting batches shuffled (a bucket iterator:
# still random, little padding).
POOL_BATCHES = 50


def _bucketed(x: TensorTuple, perm: torch.Tensor, batch_size: int, stop: int,
              generator: torch.Generator | None) -> list[torch.Tensor]:
    lengths = sequence_lengths(x).cpu()[perm.cpu()]
    perm = perm.cpu()
    chunks = []
    pool = batch_size * POOL_BATCHES
    for p0 in range(0, stop, pool):
        idx = perm[p0:min(p0 + pool, stop)]
        idx = idx[torch.sort(lengths[p0:p0 + len(idx)], stable=True).indices]
        chunks += [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    order = torch.randperm(len(chunks), generator=generator).tolist()
    return [chunks[i] for i in order]


@dataclass(frozen=True)
class Augment:
    """Random crop with padding and horizontal flip, applied per sample, vectorised.

    Attributes:
        crop_padding: pad each side by this many pixels, then crop back to the original size
            at a random offset (0 = no crop).
        hflip: mirror each sample left-right with probability 1/2.
        padding_mode: "reflect" or "zeros" (how the padding is filled).
    """

    crop_padding: int = 0
    hflip: bool = False
    padding_mode: str = "reflect"

    def __post_init__(self) -> None:
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) \
                or self.crop_padding < 0:
            raise bad_value("crop_padding", self.crop_padding, "an integer >= 0")
        if self.padding_mode not in ("reflect", "zeros"):
            raise bad_value("padding_mode", self.padding_mode, "reflect or zeros")

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (N, C, H, W) -> augmented (N, C, H, W), a new tensor on x's device."""
        if not self.active or len(x) == 0:
            return x
        n, _, h, w = x.shape
        p = self.crop_padding
        if p and self.padding_mode == "reflect" and p >= min(h, w):
            raise bad_value("crop_padding", p, f"less than the image size {min(h, w)} for "
                            "reflect padding", "use a smaller padding or padding_mode='zeros'")
        # Draw in a fixed order on the CPU: offsets, then flips.
        offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=generator).to(x.device)
        flips = (torch.rand(n, generator=generator) < 0.5).to(x.device) if self.hflip else None
        xp = F.pad(x, (p, p, p, p), mode="reflect" if self.padding_mode == "reflect"
                   else "constant") if p else x
        rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # (N, H)
        cols_fwd = torch.arange(w, device=x.device)
        cols = offsets[:, 1:2] + cols_fwd  # (N, W)
        if flips is not None:
            # A flipped sample reads its crop's columns right to left: an exact mirror.
            cols = torch.where(flips[:, None], offsets[:, 1:2] + (w - 1 - cols_fwd), cols)
        batch = torch.arange(n, device=x.device)[:, None, None]
        out = xp[batch, :, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C): advanced dims 1st
        return out.permute(0, 3, 1, 2).contiguous()


def batches(x: Batched, y: torch.Tensor, batch_size: int, shuffle: bool,
            generator: torch.Generator | None = None, augment: Augment | None = None,
            drop_last: bool = False) -> Iterator[tuple[Batched, torch.Tensor]]:
    """Yield (xb, yb) mini-batches of (x (N, ...), y (N,)) on their device.

    ``x`` is a tensor or a ``TensorTuple`` (``TokenInputs``, ``Hidden``): those are indexed
    field by field and each batch is trimmed to its longest sequence (``trim_padding``);
    shuffled, they are drawn in pools of ``POOL_BATCHES`` batches sorted by length
    (``_bucketed``), so that each batch has sequences of similar length.

    Shuffling indexes with a permutation drawn from ``generator`` on the CPU (moved to
    x.device), so a seed reproduces the order on any device. Without shuffle, batches are
    views in order. ``augment`` is applied to each x batch with the same generator.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise bad_value("batch_size", batch_size, "an integer >= 1")
    n = len(x)
    if len(y) != n:
        raise bad_value("y", f"{len(y)} labels", f"one label per example ({n})")
    tokens = isinstance(x, TensorTuple)
    if tokens and augment is not None and augment.active:
        raise bad_value("augment", augment, f"no augmentation for {type(x).__name__} inputs "
                        "(crop and flip are image operations)", "set augment=False")
    if generator is not None and generator.device.type != "cpu":
        raise bad_value("generator", f"a torch.Generator on {generator.device}",
                        "a CPU generator (draws are made on the CPU and copied to the data's "
                        "device, so a seed gives the same batches on every device)",
                        "pass torch.Generator().manual_seed(seed)")
    # One permutation per epoch, copied to the data's device once: every batch is then an
    # index into tensors that stay on the device (no host round trip per batch).
    perm = torch.randperm(n, generator=generator).to(x.device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    if tokens and perm is not None:  # shuffled token batches: sorted by length in pools
        for idx in _bucketed(x, perm, batch_size, stop, generator):
            idx = idx.to(x.device)
            yield trim_padding(x[idx]), y[idx.to(y.device)]
        return
    for start in range(0, stop, batch_size):
        if perm is None:
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = perm[start:start + batch_size]
            xb, yb = x[idx], y[idx.to(y.device)]
        if tokens:
            xb = trim_padding(xb)
        elif augment is not None:
            xb = augment(xb, generator)
        yield xb, yb
