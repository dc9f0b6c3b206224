"""Members: source checkpoints of one architecture, and the shift vector between them.

The shift vector is ``delta = mean_r (theta_ft_r - theta_src_r)`` over the encoder (every
block's parameters, and with ``bn="shift"`` its BatchNorm running statistics too), from
the r reference members. A member ``i`` is shifted to ``theta_i + alpha * delta``; its head
(the target's classes) is the first reference's fine-tuned head or a fresh seeded one.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from transferlab.errors import UserError, bad_value
from transferlab.models.base import BlockModel

BN_CHOICES = ("reestimate", "shift")
HEAD_CHOICES = ("reference", "fresh", "probe")


def _weights_path(path: str | Path) -> str:
    from transferlab.checkpoint import checkpoint_paths

    return str(checkpoint_paths(path)[0])


def _signature(model: BlockModel) -> dict:
    """What must agree between members: the encoder's tensor names and shapes."""
    return {k: tuple(v.shape) for k, v in model.blocks.state_dict().items()}


def check_members(paths: list[str]) -> list[str]:
    """Load each checkpoint and check all share one architecture; the weights paths.

    Raises ``UserError`` naming a member given twice (paths resolved), or the first member
    that differs (what it is and what member 0 is).
    """
    from transferlab._paths import checkpoint_files, real
    from transferlab.checkpoint import load_checkpoint
    from transferlab.models.compat import describe

    if not paths:
        raise bad_value("members", "none", "at least one source checkpoint",
                        "pass --members PATH... or --pretrain TASK --members M")

    seen: dict = {}
    for i, p in enumerate(paths):  # the same checkpoint twice is one member counted twice
        key = real(checkpoint_files(p)[0])
        if key in seen:
            raise UserError(f"members: member {i} ({p}) is member {seen[key]} "
                            f"({paths[seen[key]]}) again: allowed are distinct checkpoints; "
                            "drop the duplicate or pass another checkpoint")
        seen[key] = i
    out, first, first_desc = [], None, ""
    for i, p in enumerate(paths):
        model, _ = load_checkpoint(p)
        sig = _signature(model)
        if first is None:
            first, first_desc = sig, describe(model)
        elif sig != first:
            raise UserError(f"members: member {i} ({p}) has another architecture than member "
                            f"0 ({paths[0]}): {describe(model)} vs {first_desc}; allowed are "
                            "members of one architecture; pass checkpoints of one arch")
        out.append(_weights_path(p))
    return out


def pretrain_members(task: str, m: int, folder: Path, arch: str = "convnet",
                     train: dict | None = None, data_dir: str | None = None,
                     progress: bool = False, arch_kwargs: dict | None = None,
                     shared_init: bool = False) -> list[str]:
    """Pretrain ``m`` members on ``task`` with seeds 0..m-1 into ``folder`` (each kept once
    written: a resumed run reuses them). Returns their weights paths.

    ``shared_init``: every member's encoder starts from seed 0's initial weights (seeds then
    differ in batch order, augmentation and the head's draw), so that the members' weights
    may share a basin and a shift vector fitted on one of them mean the same for the others
    (measured on MNIST -> KMNIST: it did not close the gap to fine-tuning every member, see
    docs/ensembles.md); by default each member has its own initialisation."""
    from transferlab.api import pretrain_checkpoint
    from transferlab.checkpoint import read_meta

    import json

    folder.mkdir(parents=True, exist_ok=True)
    recipe = {"task": task, "arch": arch, "arch_kwargs": arch_kwargs or {},
              "train": train or {}}
    if shared_init:  # absent when False: folders written before the option stay valid
        recipe["shared_init"] = True
    stamp = folder / "recipe.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != recipe:
        raise UserError(f"members folder {folder} holds members pretrained by another recipe "
                        f"({stamp.read_text().strip()}): allowed is the same recipe "
                        f"({json.dumps(recipe, sort_keys=True)}); pass another folder")
    stamp.write_text(json.dumps(recipe, sort_keys=True))
    out = []
    for i in range(m):
        path = folder / f"source{i}"
        weights = path.with_name(path.name + ".safetensors")
        if not (weights.is_file() and path.with_name(path.name + ".json").is_file()):
            metrics = pretrain_checkpoint(task, str(path), arch=arch, arch_kwargs=arch_kwargs,
                                          train=train, seed=i,
                                          data_dir=data_dir, progress=progress,
                                          save_diverged=False,
                                          init_seed=0 if shared_init else None)
            if metrics.get("outcome") != "ok":
                raise UserError(f"pretraining member {i} on {task!r} diverged "
                                f"({metrics.get('reason')}); lower --pretrain-lr")
        read_meta(str(weights))  # a damaged pair is an error here, not in a worker
        out.append(str(weights))
    return out


def _encoder_state(model: BlockModel, with_stats: bool) -> dict[str, torch.Tensor]:
    """Float tensors of the encoder: parameters, plus BN running mean/var if ``with_stats``."""
    names = {n for n, _ in model.blocks.named_parameters()}
    out = {}
    for k, v in model.blocks.state_dict().items():
        if k in names or (with_stats and k.endswith(("running_mean", "running_var"))):
            out[k] = v.detach().cpu().double()  # sources and tuned may be on two devices
    return out


def shift_vector(sources: list[BlockModel], tuned: list[BlockModel],
                 bn: str = "reestimate") -> dict[str, torch.Tensor]:
    """``mean_r (tuned_r - sources_r)`` over the encoder (float64 tensors by name)."""
    if bn not in BN_CHOICES:
        raise bad_value("bn", bn, " or ".join(BN_CHOICES))
    stats = bn == "shift"
    delta: dict[str, torch.Tensor] = {}
    for s, t in zip(sources, tuned):
        a, b = _encoder_state(s, stats), _encoder_state(t, stats)
        for k in a:
            delta[k] = delta.get(k, 0) + (b[k] - a[k]) / len(sources)
    return delta


@torch.no_grad()
def apply_shift(source: BlockModel, delta: dict[str, torch.Tensor], alpha: float,
                head_from: BlockModel | None, num_classes: int, generator: torch.Generator,
                bn: str = "reestimate", target_x: torch.Tensor | None = None,
                batch_size: int = 128, probe: tuple | None = None,
                probe_l2: float | None = None) -> BlockModel:
    """A copy of ``source`` with ``theta + alpha * delta`` in its encoder and a head for
    ``num_classes``: a copy of ``head_from``'s (the reference's) or, when ``head_from`` is
    None, a fresh one seeded by ``generator``.

    ``probe=(x_train, y_train, x_val, y_val)`` (with ``head_from=None``): the fresh head is
    then fitted by the L-BFGS linear probe on the shifted encoder's own features (L2 picked
    on the validation split, the head fitted on the train split only: the val split still
    chooses alpha and scores the member afterwards; ``probe_l2``: that L2, not picked):
    a member's features are its own
    coordinates, in which the
    reference's head need not read anything (independently pretrained members differ by
    more than a permutation of units).

    ``bn="reestimate"``: BatchNorm statistics re-estimated on ``target_x`` (N, ...) (AdaBN,
    a size-weighted pass in train mode); ``"shift"``: they were shifted with ``delta``
    (running variances clamped at 1e-5, since a shifted variance may turn negative).
    """
    from transferlab.models.heads import replace_head
    from transferlab.protocols.bn_adapt import adapt_bn_stats

    model = copy.deepcopy(source).cpu().eval()
    state = model.blocks.state_dict()
    for k, d in delta.items():
        new = state[k].double() + alpha * d.cpu()  # the copy is on the CPU; delta anywhere
        if k.endswith("running_var"):
            new = new.clamp_min(1e-5)
        state[k].copy_(new.to(state[k].dtype))
    if head_from is not None:
        model.head = copy.deepcopy(head_from.head).cpu()
        if model.arch is not None:
            model.arch = {**model.arch, "num_classes": num_classes}
    else:
        replace_head(model, num_classes, generator)
    if bn == "reestimate":
        bns = [m for m in model.blocks.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if bns:
            if target_x is None:
                raise UserError("bn='reestimate' needs the target's training inputs")
            adapt_bn_stats(model, target_x, batch_size, bns)
    if probe is not None:
        if head_from is not None:
            raise ValueError("apply_shift: probe fits a fresh head; pass head_from=None")
        probe_head(model, *probe_features(model, probe), l2=probe_l2)
    return model.eval()


@torch.no_grad()
def probe_features(model: BlockModel, probe: tuple) -> tuple:
    """``(f_train, y_train, f_val, y_val)``: the last block's eval-mode outputs (N, ...) of
    ``probe=(x_train, y_train, x_val, y_val)``, what ``probe_head`` fits on."""
    from transferlab.features import prefix_features

    x_tr, y_tr, x_va, y_va = probe
    model.eval()
    return (prefix_features(model, x_tr, model.num_blocks), y_tr,
            prefix_features(model, x_va, model.num_blocks), y_va)


def probe_head(model: BlockModel, f_tr, y_tr, f_va, y_va, l2: float | None = None) -> dict:
    """Fit ``model``'s head by the L-BFGS linear probe on ``probe_features``' output;
    ``{"l2", "val_acc"}``. L2 picked on validation (the ``L2_GRID`` path), or ``l2`` when
    given (one fit: what the members after the first reuse, see ``shift.ShiftConfig.run``).
    Fitted on the training split only (``refit=False``): the validation split still picks
    alpha afterwards."""
    from transferlab.protocols.linear_probe import fit_probe

    return fit_probe(model, f_tr, y_tr, f_va, y_va, l2=l2, refit=False)

