"""Every place the sweep engine touches the rest of transferlab, in one small module.

Imports are lazy so that ``import transferlab.sweep`` (and the CLI's ``--help``) stays fast
and worker processes only load torch when they run a trial.
"""

from __future__ import annotations

import dataclasses
import functools
import re

from transferlab.errors import UserError

def train_fields() -> dict[str, str]:
    """``{field name: annotation}`` of ``TrainConfig``."""
    from transferlab.train import TrainConfig

    return {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def coerce_train_value(name: str, value):
    """YAML 1.1 reads ``1e-3`` as a string; turn such strings into floats for float fields."""
    ann = train_fields().get(name, "")
    if isinstance(value, str) and "float" in ann:
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool) and ann.startswith("float"):
        return float(value)  # lr: 1 and lr: 1.0 are the same trial
    return value


def resolve_train(overrides: dict, protocol: str | None = None) -> dict:
    """Every ``TrainConfig`` field, defaults filled in; raises ``UserError`` if invalid.

    With ``protocol``, its defaults too (``lr_mult=None`` -> the protocol's value), so that
    a trial's key holds what runs: finetune with lr_mult unset and 0.1 is one trial.
    """
    from transferlab.train import TrainConfig

    d = {k: coerce_train_value(k, v) for k, v in overrides.items()}
    try:
        cfg = TrainConfig.from_dict(d)
    except TypeError as exc:  # e.g. a comparison between str and int in __post_init__
        raise UserError(f"train={d!r} is invalid: {exc}; check the value types") from exc
    if protocol is not None:
        from transferlab.protocols import get_protocol, resolve_train as _resolve

        cfg = _resolve(get_protocol(protocol).config, cfg)
    return cfg.to_dict()


def check_protocol(name: str) -> None:
    """Raise ``UserError`` if ``name`` is not a known protocol."""
    from transferlab.protocols import get_protocol

    get_protocol(name)


def split_protocol(name: str) -> tuple[str, int | None]:
    """``"freeze:3" -> ("freeze", 3)``; ``"linear-probe" -> ("linear-probe", None)``."""
    m = re.fullmatch(r"(.+):(-?\d+)", name)
    return (m.group(1), int(m.group(2))) if m else (name, None)


@functools.lru_cache(maxsize=None)
def takes_depth(base: str) -> bool:
    """Whether protocol ``base`` is written ``base:n`` (the registry lists it as ``base:n``)."""
    from transferlab.protocols import protocol_names

    return f"{base}:n" in protocol_names()


def depth_range(base: str, num_blocks: int) -> tuple[range, range]:
    """(allowed depths, what ``depth: all`` expands to) for protocol ``base`` on L blocks.

    Every depth protocol accepts 0..L (freeze:0 trains everything, freeze:L is a probe);
    ``all`` means the interior 1..L-1, the curve of Yosinski et al., whose end points are
    other protocols (finetune/scratch and linear-probe).
    """
    return range(0, num_blocks + 1), range(1, num_blocks)


# --- tasks ------------------------------------------------------------------------------
def task_fields() -> tuple[str, ...]:
    """Task options usable as axes (``per_class`` -> ``digits:per_class=20``).

    The task's own ``seed`` is left out: the ``seed`` axis is the trial seed.
    """
    from transferlab.data import TaskSpec

    return tuple(k for k in TaskSpec.keys() if k != "seed")


def with_task_options(task: str, options: dict) -> str:
    """``task`` with ``key=value`` options set (replacing any given), in canonical form."""
    parts = task.split(":")
    head, opts = parts[0], {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        opts[k] = v
    for k, v in options.items():
        opts[k] = str(v)
    out = ":".join([head] + [f"{k}={v}" if v != "" else k for k, v in opts.items()])
    return canonical_task(out)


def task_fingerprint(task: str, data_dir: str | None) -> str:
    """``Task.fingerprint`` of the task string ``task`` built from ``data_dir``: the sha256
    of the data a trial on it actually sees (``UserError`` if the task cannot be built)."""
    import torch

    from transferlab.data import make_task

    with torch.random.fork_rng(devices=[]):  # building a task must not move the caller's RNG
        return make_task(task, data_dir=data_dir, progress=False).fingerprint


def canonical_task(task: str) -> str:
    """Parse ``task`` (``UserError`` if invalid) and return its canonical string."""
    from transferlab.data import TaskSpec

    return str(TaskSpec.parse(task))


# --- models and checkpoints ---------------------------------------------------------------
def checkpoint_weights(path: str) -> str:
    """The weights file of a checkpoint given with or without ``.safetensors``."""
    from transferlab.checkpoint import checkpoint_paths

    return str(checkpoint_paths(path)[0])


def checkpoint_num_blocks(path: str) -> int:
    """Blocks of a checkpoint's model, from its sidecar (no weights are loaded)."""
    from transferlab.checkpoint import load_checkpoint, read_meta

    meta = read_meta(path)
    if isinstance(meta.get("blocks"), list):
        return len(meta["blocks"])
    import torch

    with torch.random.fork_rng(devices=[]):  # building draws random weights: not the caller's
        model, _meta = load_checkpoint(path)
    return len(model.blocks)


def arch_num_blocks(task: str, arch: str, arch_kwargs: dict, data_dir: str | None) -> int:
    """Number of blocks of ``arch`` built for ``task`` (builds the model, trains nothing)."""
    import torch

    from transferlab.data import make_task
    from transferlab.models import build_model

    t = make_task(task, data_dir=data_dir)
    with torch.random.fork_rng(devices=[]):  # building draws random weights: not the caller's
        model = build_model(arch, num_classes=t.num_classes, **t.model_kwargs, **arch_kwargs)
    return len(model.blocks)


def checkpoint_sha256(path: str) -> str:
    from transferlab.api import checkpoint_sha256 as _sha

    return _sha(path)


def pretrain_checkpoint(**kwargs) -> dict:
    from transferlab.api import pretrain_checkpoint as _pretrain

    return _pretrain(**kwargs)


def run_trial(cfg: dict, feature_cache_dir: str | None, progress: bool = False,
              keep: tuple[str, ...] = (), artifacts_dir: str | None = None) -> dict:
    from transferlab.api import run_trial as _run

    return _run(cfg, feature_cache_dir=feature_cache_dir, progress=progress, keep=keep,
                artifacts_dir=artifacts_dir)


# Most trials in one fused job: T copies of the trainable weights and optimiser state live
# on the device at once, and a failure of the job reruns every one of them the plain way.
FUSE_MAX_TRIALS = 32


def source_signature(path: str) -> str:
    """What fused trials must share of their sources: the architecture (the sidecar's
    ``arch`` and every weight's name and shape, read from the safetensors header, no
    weights). A source that is not a checkpoint file is its own signature."""
    import os

    try:
        weights = checkpoint_weights(path)
        st = os.stat(weights)
        return _signature(weights, st.st_mtime_ns, st.st_size)
    except Exception:  # noqa: BLE001 - a built-in source name, an unreadable file: alone
        return f"path:{path}"


@functools.lru_cache(maxsize=256)
def _signature(weights: str, mtime_ns: int, size: int) -> str:
    import hashlib
    import json

    from safetensors import safe_open

    from transferlab.checkpoint import read_meta

    with safe_open(weights, "pt") as f:
        shapes = [(k, list(f.get_slice(k).get_shape())) for k in sorted(f.keys())]
    arch = read_meta(weights).get("arch")
    return hashlib.sha256(json.dumps([arch, shapes], sort_keys=True, default=str)
                          .encode()).hexdigest()


def fuse_group(cfg: dict, fuse: bool | None) -> str | None:
    """The fused-job group of a resolved trial config (trials with one group run as one
    ``run_trials_fused`` job), or None when it runs alone: ``fuse=False``; ``fuse=None``
    and the trial does not train on CUDA (on the CPU fusing is not faster: docs/sweeps.md);
    no source checkpoint; a protocol or train config the fused engine does not run.

    The group is the trial minus what fused trials may differ in: seed, the source
    checkpoint (sources of one architecture: a source pretrained per seed, ensemble
    members), lr, lr_mult, the depth of a depth-taking protocol, and the task's ``episode``
    and ``seed`` keys (which sample of the task: per-trial support sets).
    """
    import json

    if fuse is False or not cfg.get("source"):
        return None
    from transferlab.fused import fusable
    from transferlab.protocols import get_protocol
    from transferlab.train import TrainConfig

    train = TrainConfig.from_dict(cfg.get("train"))
    if fuse is None:
        try:
            if train.resolved_device().type != "cuda":
                return None
        except UserError:
            return None
    if fusable(cfg["protocol"], train):
        return None
    pc = get_protocol(cfg["protocol"]).config
    # The task without the keys that only pick its sample (per-trial data in a fused job).
    task = ":".join(part for part in canonical_task(cfg["task"]).split(":")
                    if not part.startswith(("episode=", "seed=")))
    shape = dataclasses.replace(pc, depth=None, upto=None).to_dict()
    rest = {k: v for k, v in (cfg.get("train") or {}).items() if k not in ("lr", "lr_mult")}
    return json.dumps([source_signature(cfg["source"]), task, cfg.get("data_dir"),
                       type(pc).__name__, shape, rest],
                      sort_keys=True, default=str)


def run_trials_fused(cfgs: list[dict], keep=(), artifacts_dirs=None) -> list[dict]:
    from transferlab.fused import run_trials_fused as _run

    return _run(cfgs, keep=keep, artifacts_dirs=artifacts_dirs)
