"""Kept trial outputs: a trial's trained weights and its test-set probabilities.

Layout, beside the database: ``<db>.artifacts/<trial key>/``

``model.safetensors`` + ``model.json``  the trained model (``save_checkpoint``; the sidecar
                                        holds the trial's config and metrics; the folder
                                        name is its key)
``probs.safetensors``                   ``probs`` (N_test, C) float32 softmax of the model on
                                        the task's test split, ``labels`` (N_test,) int64

The worker that runs the trial writes them (each file atomically: temporary file, then
rename) into the folder the driver names; the driver then stores the paths, relative to
``<db>.artifacts/``, in the trial's ``artifacts`` column. A folder no stored row refers to
(a trial killed before its row was stored, a failed trial) is removed by ``prune_artifacts``
at the end of every sweep. Kept outputs are never evicted by size: they are what was asked
for, and ``load_trial_probs`` must not fail because a cache bound was reached.

Nothing is pickled: safetensors only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from transferlab.errors import UserError

KINDS = ("weights", "probs")
WEIGHTS_NAME, PROBS_NAME = "model", "probs.safetensors"


def artifacts_root(db_path: str | os.PathLike) -> Path:
    db = Path(db_path)
    return db.with_name(db.name + ".artifacts")


def check_keep(keep: Iterable[str] | str | None, param: str = "keep") -> tuple[str, ...]:
    """Normalise ``keep`` ("weights,probs", a list, or None) to a sorted tuple of kinds."""
    if keep is None:
        return ()
    items = [k.strip() for k in (keep.split(",") if isinstance(keep, str) else keep)]
    bad = [k for k in items if k not in KINDS]
    if bad:
        raise UserError(f"{param}={bad[0]!r} is invalid: allowed are {', '.join(KINDS)}; "
                        "write e.g. --keep weights,probs")
    return tuple(sorted(set(k for k in items if k)))


def predict_probs(model, x, batch_size: int = 256):
    """Softmax of ``model`` on inputs ``x`` (N, ...), batched, in eval mode, no grad.

    Returns a (N, C) float32 CPU tensor. ``x`` may be a tensor or a ``TokenInputs``.
    """
    import torch

    from transferlab.inputs import batch_len, index

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, batch_len(x), batch_size):
            logits = model(index(x, slice(i, i + batch_size)))
            out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


def save_trial_outputs(out_dir: str | os.PathLike, keep: Iterable[str], model, task,
                       meta: dict, probs=None) -> dict[str, str]:
    """Write what ``keep`` asks for into ``out_dir``; returns ``{kind: absolute path}``.

    ``model``: the trained BlockModel (CPU, eval); ``task``: the Task it was trained for;
    ``meta``: JSON-able facts for the weights sidecar; ``probs``: the (n_test, C) test
    softmax if already computed (``TransferResult.test_probs``), else predicted here.
    """
    from safetensors.torch import save_file

    from transferlab._atomic import atomic_path
    from transferlab.checkpoint import save_checkpoint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    keep = check_keep(keep)
    if "probs" in keep:
        if probs is None or len(probs) != len(task.y_test):
            probs = predict_probs(model, task.x_test)
        probs = probs.float().cpu().contiguous()
        labels = task.y_test.detach().cpu().long().contiguous()
        with atomic_path(out_dir / PROBS_NAME) as tmp:
            save_file({"probs": probs, "labels": labels}, str(tmp),
                      metadata={"task": str(meta.get("task", ""))})
        written["probs"] = str(out_dir / PROBS_NAME)
    if "weights" in keep:
        written["weights"] = str(save_checkpoint(out_dir / WEIGHTS_NAME, model, meta))
    return written


class NotKept(UserError):
    """A trial's output was not kept (or its file is gone): expected when a sweep ran
    without ``--keep``; other failures to load (a checksum mismatch) are not this."""


def _trial_artifacts(db_path: str | os.PathLike, key: str, kind: str) -> Path:
    """Absolute path of trial ``key``'s kept ``kind``; ``UserError`` if it was not kept."""
    from transferlab.sweep.store import Store

    with Store(db_path, readonly=True) as store:
        rows = store.rows([key])
    if not rows:
        raise UserError(f"key={key!r} is not a trial of db={str(db_path)!r}: allowed are the "
                        "keys of its trials (the 'key' column of load_results)")
    arts = rows[0].get("artifacts") or {}
    if kind not in arts:
        raise NotKept(f"trial {key[:12]}… of db={str(db_path)!r} kept no {kind}: allowed "
                        f"are trials run with keep: [{kind}]; rerun the sweep with --keep "
                        f"{kind} (done trials without it run again)")
    path = artifacts_root(db_path) / arts[kind]
    if not path.exists():
        raise NotKept(f"trial {key[:12]}…: its {kind} file {path} is missing; rerun the "
                        f"sweep with --keep {kind} --retry-failed, or restore the folder")
    return path


def load_trial_model(db_path: str | os.PathLike, key: str):
    """The trained model a sweep kept for trial ``key``: ``(BlockModel, meta)``.

    ``meta`` is the checkpoint sidecar: the trial's ``trial_config``, ``task_fingerprint``,
    ``metrics``, ``task`` and ``classes``.
    """
    from transferlab.checkpoint import load_checkpoint

    return load_checkpoint(_trial_artifacts(db_path, key, "weights"))


def load_trial_probs(db_path: str | os.PathLike, key: str):
    """The kept test-set probabilities of trial ``key``: ``(probs (N, C) float32 ndarray,
    labels (N,) int64 ndarray)``, rows in the order of the task's test split."""
    from safetensors.numpy import load_file

    arrays = load_file(str(_trial_artifacts(db_path, key, "probs")))
    return arrays["probs"], arrays["labels"]


def prune_artifacts(db_path: str | os.PathLike, referenced: Iterable[dict | None]) -> int:
    """Remove trial folders under ``<db>.artifacts/`` that no stored row refers to.

    ``referenced``: the ``artifacts`` dicts of every stored trial. Only the driver (which
    holds the database's lock) calls this, so no trial is writing a folder it removes.
    Returns the number of folders removed.
    """
    root = artifacts_root(db_path)
    if not root.is_dir():
        return 0
    keep = {Path(p).parts[0] for a in referenced if a for p in a.values()}
    removed = 0
    for child in root.iterdir():
        if child.name not in keep:
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed += 1
    return removed
