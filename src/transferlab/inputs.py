"""Batched inputs and block states that are not one tensor.

Images (N, C, H, W) and vectors (N, D) travel as plain tensors. Token sequences travel as
``TokenInputs`` (ids + attention mask) and the hidden states between transformer blocks as
``Hidden`` (states + mask). Both behave like one tensor wherever the training loop, the
batching, the feature cache and the similarity code need it: ``len``, indexing along the
batch dimension, ``.to(device)``, concatenation. The free functions below accept a plain
tensor *or* one of these, so generic code never branches on the modality.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch

__all__ = ["Batched", "Hidden", "TensorTuple", "TokenInputs", "batch_len", "cat", "from_flat",
           "index", "move", "to_flat"]


@dataclass(frozen=True)
class TensorTuple:
    """Named tensors that share the leading (batch) dimension N."""

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __post_init__(self) -> None:
        lens = {name: int(t.shape[0]) for name, t in self.tensors().items()}
        if len(set(lens.values())) > 1:
            raise ValueError(f"{type(self).__name__}: batch sizes differ: {lens}; every field "
                             "must have the same leading dimension N")

    def __len__(self) -> int:
        return int(next(iter(self.tensors().values())).shape[0])

    def __getitem__(self, idx) -> TensorTuple:
        return type(self)(**{k: t[idx] for k, t in self.tensors().items()})

    def to(self, *args, **kwargs) -> TensorTuple:
        """``Tensor.to`` on every field; dtype casts apply to floating fields only."""
        out = {}
        for k, t in self.tensors().items():
            if t.is_floating_point():
                out[k] = t.to(*args, **kwargs)
            else:  # ids and masks keep their integer dtype; only the device moves
                dev = kwargs.get("device", next((a for a in args if isinstance(
                    a, (str, torch.device))), None))
                out[k] = t.to(dev) if dev is not None else t
        return type(self)(**out)

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors().values())).device

    @property
    def shape(self) -> torch.Size:
        """The shape of the first field (e.g. (N, L) ids, (N, L, H) hidden states)."""
        return next(iter(self.tensors().values())).shape

    def cpu(self) -> TensorTuple:
        return self.to("cpu")

    def detach(self) -> TensorTuple:
        return type(self)(**{k: t.detach() for k, t in self.tensors().items()})


@dataclass(frozen=True)
class TokenInputs(TensorTuple):
    """Token sequences: ``input_ids`` (N, L) int64 and ``attention_mask`` (N, L) (1 = token)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor


@dataclass(frozen=True)
class Hidden(TensorTuple):
    """State between transformer blocks: ``hidden`` (N, L, H) and ``mask`` (N, L) (1 = token)."""

    hidden: torch.Tensor
    mask: torch.Tensor


Batched = Union[torch.Tensor, TensorTuple]
_KINDS: dict[str, type[TensorTuple]] = {"tokens": TokenInputs, "hidden": Hidden}


def batch_len(x: Batched) -> int:
    """N, the leading dimension."""
    return len(x) if isinstance(x, TensorTuple) else int(x.shape[0])


def index(x: Batched, idx) -> Batched:
    """``x[idx]`` along the batch dimension."""
    return x[idx]


def move(x: Batched, device: str | torch.device) -> Batched:
    return x.to(device)


def cat(xs: Sequence[Batched]) -> Batched:
    """Concatenate along the batch dimension (tensors or TensorTuples of one type)."""
    if not xs:
        raise ValueError("cat: nothing to concatenate")
    first = xs[0]
    if isinstance(first, TensorTuple):
        names = list(first.tensors())
        return type(first)(**{n: torch.cat([getattr(x, n) for x in xs]) for n in names})
    return torch.cat(list(xs))


def to_flat(x: Batched) -> tuple[str, dict[str, torch.Tensor]]:
    """(kind, named tensors) for saving (safetensors) or hashing; kind "tensor" for a tensor."""
    if isinstance(x, TensorTuple):
        kind = next(k for k, t in _KINDS.items() if isinstance(x, t))
        return kind, x.tensors()
    return "tensor", {"x": x}


def from_flat(kind: str, tensors: dict[str, torch.Tensor]) -> Batched:
    """Inverse of ``to_flat``."""
    if kind == "tensor":
        return tensors["x"]
    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r} is unknown: allowed are 'tensor', "
                         + ", ".join(repr(k) for k in _KINDS))
    return _KINDS[kind](**tensors)
