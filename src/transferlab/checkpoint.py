"""Checkpoints: safetensors weights plus a JSON sidecar; loading never unpickles.

``save_checkpoint("runs/src", model, meta)`` writes ``runs/src.safetensors`` and
``runs/src.json`` atomically (temporary file, then rename; the weights first, so a
sidecar never points at missing weights).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from transferlab._atomic import atomic_path, write_text_atomic
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
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp))
    write_text_atomic(sidecar, json.dumps(full, indent=2, sort_keys=True, default=str))
    return weights


def read_meta(path: str | os.PathLike) -> dict:
    weights, sidecar = checkpoint_paths(path)
    if not weights.exists() or not sidecar.exists():
        raise UserError(f"checkpoint={str(path)!r} is invalid: expected {weights} and {sidecar}; "
                        "create one with `transferlab pretrain --out PATH`")
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"checkpoint sidecar {sidecar} is not valid JSON ({exc}); "
                        "re-create the checkpoint") from exc


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[BlockModel, dict]:
    """Rebuild the architecture from the sidecar and load the weights strictly."""
    meta = read_meta(path)
    if not meta.get("arch"):
        raise UserError(f"checkpoint={str(path)!r} holds a wrapped user model with no "
                        "architecture to rebuild; build the module yourself, wrap it, and load "
                        "the weights with safetensors.torch.load_file")
    model = rebuild(meta["arch"])
    weights, _ = checkpoint_paths(path)
    try:
        state = load_file(str(weights), device=device)
    except Exception as exc:
        raise UserError(f"checkpoint weights {weights} cannot be read ({exc}); "
                        "re-create the checkpoint") from exc
    model.load_state_dict(state, strict=True)
    return model.to(device), meta


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """sha256 of the weights file's bytes (the identity of a source in trial keys)."""
    weights, _ = checkpoint_paths(path)
    if not weights.exists():
        raise UserError(f"checkpoint={str(path)!r} is invalid: {weights} does not exist; "
                        "check the path or pretrain a source first")
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
