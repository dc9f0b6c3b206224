"""Frozen-prefix feature caching.

When the first n blocks are frozen (no trainable parameter, eval mode) and no
augmentation applies, their output for a fixed input never changes: compute it once and
train only the rest. ``FeatureCache`` also keeps those outputs on disk, keyed by the
content of the prefix's weights, the task and the depth, so that a sweep computes them
once for every trial that shares them, and a deeper prefix starts from the deepest
shallower one already on disk (an all-depth sweep then runs each block once, not L times).

Features are computed block by block, each block reading a float32 tensor in the layout
the cache stores (channels_last for 4-D unless turned off), so that "blocks 1..n at once"
and "blocks k+1..n from the cached output of 1..k" give bit-identical tensors: a trial's
result never depends on what the cache held. Text models' prefixes read ``TokenInputs`` and
return ``Hidden`` states (ids stay integer; each batch is trimmed to its longest sequence);
the cache stores those field by field.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path

import torch
from filelock import FileLock
from torch import nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from transferlab._allocator import keep_freed_memory
from transferlab._atomic import atomic_path
from transferlab._lru import prune_cache
from transferlab.inputs import Batched, TensorTuple, batch_len, cat, from_flat, to_flat
from transferlab.models.base import BlockModel
from transferlab.models.folding import fold_for_inference

SPLITS = ("train", "val", "test")
# Bump when the stored features of a given (prefix, data, depth, layout) would change.
# 2: keyed by the task's data fingerprint, not its string; 3: max-pool before ReLU in the
# folded prefix (the same values; a zero's sign may differ); 4: EfficientNet's stages folded
# (BatchNorm into the convs, dead taps cropped: the same values to float rounding) and text
# batches of 64 on CPU (trimmed to a different padded length: the same values to rounding).
FEATURE_FORMAT_VERSION = 4


def default_batch_size(x: Batched) -> int:
    """Frozen-inference batch size for ``x``: 1024 on CUDA; on CPU 256 images (their
    activations stay in cache: 1.1-1.7x faster than larger batches) or 64 texts.

    Texts run in length-sorted batches, each trimmed to its longest sequence: 256 BANKING77
    texts pad a median of 13 tokens up to as many as 76, and MiniLM then spends most of its
    time on padding (1,000 texts: 5.1 s at 256, 3.0 s at 64 or 32, 3.5 s at 16).
    """
    if x.device.type == "cuda":
        return 1024
    return 64 if isinstance(x, TensorTuple) else 256


# block -> (its state's signature, channels_last, the fused eval copy). Weak keys: an entry
# dies with its block. Scoring a model on several tasks or depths, a depth search and a
# sweep's trials prepare each block once instead of once per call (deepcopy + folding took
# 80 ms of EfficientNet-Lite0's 0.2 s scoring pass on 200 images).
_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def _state_signature(block: nn.Module) -> tuple:
    """Changes when the block's structure or any parameter or buffer changes.

    Ids, data pointers and ``_version`` (bumped by in-place updates: optimiser steps,
    ``load_state_dict``) catch the usual changes; the per-tensor sum and norm catch the rest
    (writes through ``.data`` and BatchNorm's running-statistics updates bump no version).
    ~3 ms for EfficientNet-Lite0's 4.7 M values, against 80 ms for a fresh copy.
    """
    tensors = [*block.parameters(), *block.buffers()]
    sig = [id(m) for m in block.modules()]
    for t in tensors:
        sig += [id(t), t._version, t.data_ptr(), t.dtype, t.device, tuple(t.shape)]
    stats = [torch.stack([t.float().sum(), torch.linalg.vector_norm(t.float())]).cpu()
             for t in tensors if t.numel()]
    if stats:
        sig += torch.cat(stats).tolist()
    return tuple(sig)


def _fused_block(block: nn.Module, channels_last: bool) -> nn.Module:
    """A frozen-inference copy of one block (``models.folding.fold_for_inference``), kept
    while the block's state is unchanged."""
    sig = _state_signature(block)
    hit = _FUSED.get(block)
    if hit is not None and hit[0] == sig and hit[1] == channels_last:
        return hit[2]
    fused = fold_for_inference(block, channels_last)
    try:
        _FUSED[block] = (sig, channels_last, fused)
    except TypeError:  # not weak-referenceable: no caching
        pass
    return fused


def inference_prefix(model: BlockModel, depth: int, start: int = 0,
                     channels_last: bool = True) -> nn.Module:
    """Blocks ``start+1..depth`` specialised for frozen inference (copies; the model is
    not touched).

    Conv2d + BatchNorm2d pairs are folded into one conv (exact up to float rounding, ~1e-8),
    2x2 max-pools run before ReLU and as two strided maxima (exact; see ``models.folding``),
    and 4-D tensors use channels_last (unless ``channels_last=False``): together 2-4x faster
    on CPU than the training-mode layout. The folded copy of each block is kept while the
    block lives and its weights are unchanged, so it is prepared once, not once per call:
    treat the result as read-only.
    """
    return nn.Sequential(*[_fused_block(b, channels_last) for b in model.blocks[start:depth]])


def _block_input(h: Batched, channels_last: bool) -> Batched:
    """float32, channels_last when 4-D (and asked), else contiguous: every block's input.

    TensorTuples (token ids, Hidden states) cast only their float fields: token ids and
    masks keep their integer dtype.
    """
    if isinstance(h, TensorTuple):
        return type(h)(**{k: (t.float() if t.is_floating_point() else t).contiguous()
                          for k, t in h.tensors().items()})
    h = h.float()
    if h.dim() == 4 and channels_last:
        return h.contiguous(memory_format=torch.channels_last)
    return h.contiguous()


def _pad_to(h: TensorTuple, length: int) -> TensorTuple:
    """Zero-pad every field's dim 1 (sequence positions) back to ``length``."""
    out = {}
    for k, t in h.tensors().items():
        if t.dim() >= 2 and t.shape[1] < length:
            pad = t.new_zeros((t.shape[0], length - t.shape[1], *t.shape[2:]))
            t = torch.cat([t, pad], 1)
        out[k] = t
    return type(h)(**out)


def _tuple_prefix_features(blocks: list[nn.Module], x: TensorTuple, batch_size: int,
                           channels_last: bool) -> Batched:
    """``prefix_features`` for token / hidden inputs: batches of length-sorted sequences,
    each trimmed to its longest sequence (almost no compute on padding), outputs padded back to the split's length
    with zeros (those positions are masked out downstream)."""
    from transferlab.data.batching import trim_padding

    from transferlab.data.batching import length_order

    length = int(x.shape[1])
    # Batches of similar lengths (sorted, stable: the same batches whatever depth the
    # computation starts from, so chained and direct features are the same bits).
    order = length_order(x).to(x.device)
    parts = []
    for i in range(0, len(x), batch_size):
        h = trim_padding(x[order[i:i + batch_size]])
        for block in blocks:
            h = block(_block_input(h, channels_last))
        h = _block_input(h, channels_last)
        parts.append(_pad_to(h, length) if isinstance(h, TensorTuple) else h)
    if not parts:
        return x
    out = cat(parts)
    return out[torch.argsort(order)]  # back to the split's order


@torch.no_grad()
def prefix_features(model: BlockModel, x: Batched, depth: int,
                    batch_size: int | None = None, start: int = 0,
                    channels_last: bool = True) -> Batched:
    """Output of blocks ``start+1..depth`` in eval mode: (N, ...) -> (N, ...) float32.

    Text models: ``TokenInputs`` (or ``Hidden``) in, ``Hidden`` (N, L, H) out, L the
    input's padded length.

    ``x`` is the input of block ``start + 1`` (the raw input when ``start=0``, else the
    cached output of the first ``start`` blocks). The result is the same bits whatever
    ``start`` is; 4-D results are in the channels_last layout unless ``channels_last=False``
    (the layout training reads them in: no copy per batch or per split).
    """
    if not 0 <= start <= depth:
        raise ValueError(f"start={start} must lie in 0..depth={depth}")
    if depth == start:
        return x
    keep_freed_memory()
    if batch_size is None:
        batch_size = default_batch_size(x)
    blocks = [inference_prefix(model, k + 1, start=k, channels_last=channels_last)
              for k in range(start, depth)]
    if isinstance(x, TensorTuple):
        return _tuple_prefix_features(blocks, x, batch_size, channels_last)
    out = None
    # An empty split (a k-shot task without validation) still runs once, on an empty batch,
    # so that its features have the right trailing shape (0, ...).
    for i in range(0, max(len(x), 1), batch_size):
        h = x[i:i + batch_size]
        for block in blocks:
            # Each block reads the layout a cached prefix is stored in, so that chained
            # and direct computation round alike.
            h = block(_block_input(h, channels_last))
        h = _block_input(h, channels_last)
        if out is None:  # one allocation for the split, filled batch by batch
            fmt = torch.channels_last if h.dim() == 4 and channels_last \
                else torch.contiguous_format
            out = torch.empty((len(x), *h.shape[1:]), dtype=h.dtype, device=h.device,
                              memory_format=fmt)
        out[i:i + len(h)] = h
    return out if out is not None else x.new_zeros((0,))


def prefix_digests(model: BlockModel, depth: int) -> list[str]:
    """sha256 of blocks 1..k (names, structure, parameters, buffers) for k = 1..depth."""
    h = hashlib.sha256()
    out = []
    for name, block in zip(model.block_names[:depth], model.blocks[:depth]):
        h.update(name.encode())
        h.update(repr(block).encode())
        for key, t in block.state_dict().items():
            h.update(key.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
                     .tobytes())
        out.append(h.copy().hexdigest())
    return out


def prefix_digest(model: BlockModel, depth: int) -> str:
    """sha256 of the first ``depth`` blocks' names, structure, parameters and buffers."""
    return prefix_digests(model, depth)[-1] if depth else hashlib.sha256().hexdigest()


class FeatureCache:
    """On-disk cache of prefix features: ``<root>/<key>.safetensors``.

    Keys combine the prefix digest, the task's data fingerprint (``Task.fingerprint``: a
    hash of the tensors it holds, so two datasets with the same name never share an entry),
    the depth, the layout and a format version; a hit whose split sizes differ from the
    task's is recomputed, never returned. ``limit_bytes``
    bounds the folder: the least recently used files are removed past it.
    ``last_start`` says, after ``get_or_compute``, which depth the features were extended
    from (``depth`` itself on a hit, 0 when computed from the input).
    """

    def __init__(self, root: str | os.PathLike, limit_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.limit_bytes = limit_bytes
        self.last_start: int | None = None

    @staticmethod
    def _key(digest: str, task_id: str, depth: int, channels_last: bool = True) -> str:
        """``task_id`` is the task's data fingerprint (see ``key``)."""
        ident = {"prefix": digest, "data": task_id, "depth": depth,
                 "version": FEATURE_FORMAT_VERSION,
                 # another layout rounds differently and is stored differently: its own entry
                 "layout": "nhwc" if channels_last else "contiguous"}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def key(self, model: BlockModel, task, depth: int, channels_last: bool = True) -> str:
        """The entry name for ``task`` (a ``Task``, or its ``fingerprint`` string)."""
        task_id = task if isinstance(task, str) else task.fingerprint
        return self._key(prefix_digest(model, depth), task_id, depth, channels_last)

    @staticmethod
    def _save(feats: dict[str, Batched], path: Path) -> None:
        # channels_last (N, C, H, W) tensors are stored as their memory is laid out,
        # (N, H, W, C): a view, no copy; loading permutes back, again without a copy.
        # TensorTuples (Hidden states of text models) are stored field by field as
        # "<split>.<field>", their kind in the metadata ("tensor" splits keep the bare name).
        tensors, kinds, nhwc = {}, {}, []
        for split, v in feats.items():
            kind, flat = to_flat(v)
            kinds[split] = kind
            if kind == "tensor":
                if v.dim() == 4 and v.is_contiguous(memory_format=torch.channels_last):
                    v = v.permute(0, 2, 3, 1)
                    nhwc.append(split)
                tensors[split] = v.contiguous().cpu()
            else:
                tensors.update({f"{split}.{k}": t.contiguous().cpu() for k, t in flat.items()})
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"nhwc": ",".join(sorted(nhwc)),
                                                   "kinds": json.dumps(kinds, sort_keys=True)})

    def _load(self, path: Path, device, sizes: dict[str, int] | None = None
              ) -> dict[str, Batched] | None:
        """The entry at ``path``, or None if absent, corrupt or not of ``sizes`` (N per split)."""
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as f:
                meta = f.metadata() or {}
                nhwc = set(filter(None, meta.get("nhwc", "").split(",")))
                kinds = json.loads(meta.get("kinds", "{}"))  # absent in older files: tensors
                raw = {k: f.get_tensor(k) for k in f.keys()}
            os.utime(path)  # mark as recently used
        except (SafetensorError, OSError, ValueError):
            # a corrupt or vanished file is recomputed, not trusted; anything else (a device
            # out of memory while loading, a bug) propagates and leaves a valid entry alone
            path.unlink(missing_ok=True)
            return None
        feats: dict[str, Batched] = {}
        for split in SPLITS:
            kind = kinds.get(split, "tensor")
            if kind == "tensor":
                if split not in raw:
                    return None
                feats[split] = raw[split].permute(0, 3, 1, 2) if split in nhwc else raw[split]
            else:
                fields = {k[len(split) + 1:]: t for k, t in raw.items()
                          if k.startswith(f"{split}.")}
                try:
                    feats[split] = from_flat(kind, fields)
                except (TypeError, ValueError):  # missing or foreign fields: recompute
                    return None
        if sizes is not None and any(batch_len(feats[s]) != n for s, n in sizes.items()):
            path.unlink(missing_ok=True)  # not this task's features: never trusted
            return None
        return feats

    def get_or_compute(self, model: BlockModel, task, depth: int,
                       channels_last: bool = True) -> dict[str, Batched]:
        """Features of ``task``'s train/val/test splits after ``depth`` blocks.

        On a miss, starts from the deepest shallower depth found in the cache.
        """
        task_id, device = task.fingerprint, task.x_train.device
        sizes = {s: batch_len(getattr(task, f"x_{s}")) for s in SPLITS}
        keys = [self._key(d, task_id, k + 1, channels_last)
                for k, d in enumerate(prefix_digests(model, depth))]
        path = self.root / f"{keys[-1]}.safetensors"
        feats = self._load(path, device, sizes)
        if feats is not None:
            self.last_start = depth
            return feats
        self.root.mkdir(parents=True, exist_ok=True)
        # Parallel trials that need the same entry wait for the first one to write it
        # instead of computing it again. The OS drops the lock of a killed process.
        with FileLock(f"{path}.lock"):
            feats = self._load(path, device, sizes)
            if feats is not None:
                self.last_start = depth
                return feats
            start, base = 0, {s: getattr(task, f"x_{s}") for s in SPLITS}
            for k in range(depth - 1, 0, -1):
                found = self._load(self.root / f"{keys[k - 1]}.safetensors", device, sizes)
                if found is not None:
                    start, base = k, found
                    break
            feats = {s: prefix_features(model, base[s], depth, start=start,
                                        channels_last=channels_last) for s in SPLITS}
            self.last_start = start
            self._save(feats, path)
        self.evict()
        return feats

    def evict(self) -> None:
        prune_cache(self.root, self.limit_bytes)


def compute_split_features(model: BlockModel, task, depth: int,
                           channels_last: bool = True) -> dict[str, Batched]:
    """``prefix_features`` of ``task``'s train, val and test inputs, by split name."""
    return {split: prefix_features(model, getattr(task, f"x_{split}"), depth,
                                   channels_last=channels_last) for split in SPLITS}
