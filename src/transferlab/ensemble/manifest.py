"""A saved ensemble: ``OUT/manifest.json`` + each strategy's members, and what reads it.

Layout::

    OUT/manifest.json                 format, task, train, seed, sources, strategies
    OUT/<strategy>/member<i>.{safetensors,json}   the transferred members (checkpoints)
    OUT/<strategy>/delta.safetensors  the shift vector (shift strategies; read by `add`)

``manifest["strategies"][label]`` holds ``strategy`` (registered name), ``config``,
``members`` (paths relative to OUT) and ``metrics`` (the row of ``transfer_ensemble``).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from transferlab.errors import UserError

FORMAT = "transferlab-ensemble/1"


def _folder(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


def save_ensemble(out: str | Path, res, configs: dict) -> Path:
    """Write every strategy's members, shift vectors and the manifest into ``out``."""
    from safetensors.torch import save_file

    from transferlab._atomic import atomic_path, write_text_atomic
    from transferlab.checkpoint import save_checkpoint
    from transferlab.ensemble.run import finite_rows
    from transferlab.sweep import load_trial_model

    out = Path(out)
    ctx = res.context
    strategies = {}
    for row in finite_rows(res.rows):
        label = row["strategy"]
        run, cfg = res.runs[label], configs[label]
        folder = out / _folder(label)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, t in enumerate(run.trials):
            model, meta = load_trial_model(ctx.db, t.key)
            path = save_checkpoint(folder / f"member{i}", model, {**meta, "member": i})
            paths.append(str(path.relative_to(out)))
        entry = {"strategy": cfg.name, "config": cfg.to_dict(), "members": paths,
                 "metrics": row}
        if "delta" in run.extra:
            with atomic_path(folder / "delta.safetensors") as tmp:
                save_file({k: v.contiguous() for k, v in run.extra["delta"].items()}, str(tmp))
            entry["delta"] = str((folder / "delta.safetensors").relative_to(out))
        if "alpha" in run.extra:  # the alpha used (alpha='auto' picks one on validation)
            entry["alpha"] = run.extra["alpha"]
        if run.extra.get("probe_l2") is not None:  # the L2 the shifted members' probes used
            entry["probe_l2"] = run.extra["probe_l2"]
        strategies[label] = entry
    manifest = {"format": FORMAT, "task": ctx.task, "data_dir": ctx.data_dir,
                "train": ctx.train, "seed": ctx.seed,
                "sources": [str(Path(p).resolve()) for p in res.members],
                "strategies": strategies}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return out / "manifest.json"


def load_manifest(out: str | Path) -> dict:
    """The manifest of a saved ensemble; ``UserError`` if ``out`` holds none."""
    path = Path(out) / "manifest.json"
    if not path.is_file():
        raise UserError(f"--ensemble={str(out)!r} is invalid: allowed is a folder written by "
                        "`transferlab ensemble --out`, holding manifest.json; check the path")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg}); rerun `transferlab ensemble "
                        "--out`") from exc
    if not isinstance(manifest, dict):
        raise UserError(f"{path} holds a JSON {type(manifest).__name__}: allowed is a JSON "
                        "object written by `transferlab ensemble --out`; rerun it")
    if manifest.get("format") != FORMAT:
        raise UserError(f"{path}: format {manifest.get('format')!r} is invalid: allowed is "
                        f"{FORMAT!r}; rerun `transferlab ensemble --out`")
    strategies = manifest.get("strategies")
    bad = (not isinstance(strategies, dict) or not strategies
           or any(not isinstance(e, dict) or not isinstance(e.get("members"), list)
                  or not all(isinstance(m, str) for m in e["members"])
                  for e in strategies.values()))
    if bad or not isinstance(manifest.get("task"), str):
        raise UserError(f"{path}: 'strategies' or 'task' is invalid: allowed is a manifest "
                        "whose task is a string and whose strategies map each label to a list "
                        "of member paths; rerun `transferlab ensemble --out`")
    return manifest


def input_files(out: str | Path) -> list[Path]:
    """Every file a saved ensemble is read from: the manifest, members (both files of each
    checkpoint) and shift vectors (none when ``out`` holds no readable manifest)."""
    out = Path(out)
    files = [out / "manifest.json"]
    try:
        manifest = load_manifest(out)
    except UserError:
        return files
    for entry in manifest.get("strategies", {}).values():
        for rel in [*entry.get("members", []), entry.get("delta")]:
            if rel:
                files += [out / rel, (out / rel).with_suffix(".json")]
    return files


def pick_strategy(manifest: dict, label: str | None, need_shift: bool = False) -> str:
    """``label`` checked against the manifest, or its first (shift) strategy."""
    labels = list(manifest["strategies"])
    if label is None:
        usable = [k for k in labels if not need_shift or "delta" in manifest["strategies"][k]]
        if not usable:
            raise UserError("--strategy: this ensemble has no shift strategy (no shift "
                            f"vector); allowed are ensembles with one of {labels} run by "
                            "shift; rerun with --strategies ...,shift")
        return usable[0]
    if label not in labels:
        raise UserError(f"--strategy={label!r} is invalid: allowed are {', '.join(labels)}")
    if need_shift and "delta" not in manifest["strategies"][label]:
        raise UserError(f"--strategy={label!r} has no shift vector: allowed are "
                        f"{[k for k in labels if 'delta' in manifest['strategies'][k]]}")
    return label


def member_probs(out: str | Path, members: list[str], task) -> np.ndarray:
    """(M, N_test, C) test probabilities of the saved ``members`` on ``task``."""
    from transferlab.checkpoint import load_checkpoint
    from transferlab.sweep.artifacts import predict_probs

    probs = []
    for rel in members:
        model, _ = load_checkpoint(Path(out) / rel)
        probs.append(predict_probs(model, task.x_test).cpu().numpy())
    return np.stack(probs)


def check_members_fit(out: str | Path, members: list[str], task) -> None:
    """The saved members run on ``task`` and were trained on its classes, in its order: an
    ensemble scored on another class set of the same size would answer silently wrong."""
    from transferlab.checkpoint import load_checkpoint
    from transferlab.models.compat import check_runs_on

    if not members:
        raise UserError(f"ensemble {str(out)!r} has no members: allowed is a saved ensemble "
                        "with at least one; rerun `transferlab ensemble --out`")
    model, meta = load_checkpoint(Path(out) / members[0])
    trained = [str(c) for c in meta.get("classes") or []]
    if trained and len(trained) == task.num_classes and trained != [str(c) for c in task.classes]:
        raise UserError(f"--task={str(task.spec)!r} has classes {list(task.classes)}: allowed "
                        f"is a task of the ensemble's classes {trained} (in that order); pass "
                        "a task with those classes")
    check_runs_on(model, task.x_test, "ensemble member", str(task.spec))


def predict(out: str | Path, strategy: str | None = None, task: str | None = None,
            data_dir: str | None = None) -> dict:
    """Metrics of each saved strategy (or ``strategy`` alone) on ``task`` (default: the
    manifest's target) and the members' probabilities: ``{label: {"metrics", "probs"}}``."""
    from transferlab.data import make_task
    from transferlab.metrics import ensemble_metrics

    manifest = load_manifest(out)
    labels = [pick_strategy(manifest, strategy)] if strategy else list(manifest["strategies"])
    t = make_task(task or manifest["task"], data_dir=data_dir or manifest.get("data_dir"))
    result = {}
    for label in labels:
        members = manifest["strategies"][label]["members"]
        check_members_fit(out, members, t)
        p = member_probs(out, members, t)
        if p.shape[-1] != t.num_classes:
            raise UserError(f"--task={str(t.spec)!r} has {t.num_classes} classes: allowed is "
                            f"a task with the ensemble's {p.shape[-1]}")
        result[label] = {"metrics": ensemble_metrics(p, t.y_test.cpu().numpy()), "probs": p}
    return result


def check_new_source(out: str | Path, source: str, strategy: str | None = None) -> None:
    """``source`` is not already in the saved ensemble (as a source, an added source or a
    member file, paths resolved): the command line refuses a duplicate member; the API's
    ``add_member`` accepts one (tests build members from the sources)."""
    from transferlab._paths import checkpoint_files, real

    out = Path(out)
    manifest = load_manifest(out)
    label = pick_strategy(manifest, strategy, need_shift=True)
    entry = manifest["strategies"][label]
    mine = real(checkpoint_files(source)[0])
    known = [*(("source", s) for s in manifest.get("sources", [])),
             *(("added source", a.get("source")) for a in entry.get("added", [])),
             *(("member", out / m) for m in entry["members"])]
    same = next(((what, k) for what, k in known
                 if k and real(checkpoint_files(k)[0]) == mine), None)
    if same:
        raise UserError(f"--source={source!r} is invalid: it is already the ensemble's "
                        f"{same[0]} {str(same[1])!r} of {label!r}; allowed is a checkpoint not "
                        "yet in the ensemble (a copy under a new name is one); pass another "
                        "--source")


def add_member(out: str | Path, source: str, strategy: str | None = None,
               compare: bool = True, progress: bool = False) -> dict:
    """Add the source checkpoint ``source`` to the saved shift ensemble ``strategy``: shift
    it by the saved delta, tiny fine-tune it, save it and update the manifest.

    With ``compare``, the same member is also fine-tuned fully (the ensemble's epochs) for
    the time ratio. Returns times, the new member's accuracy and the ensemble's metrics
    before and after.
    """
    from safetensors.torch import load_file

    from transferlab._atomic import write_text_atomic
    from transferlab.api import checkpoint_meta, transfer
    from transferlab.checkpoint import load_checkpoint, save_checkpoint
    from transferlab.data import make_task
    from transferlab.ensemble.members import _signature
    from transferlab.ensemble.registry import get_strategy
    from transferlab.ensemble.shift import CONTINUE
    from transferlab.metrics import ensemble_metrics

    out = Path(out)
    manifest = load_manifest(out)
    label = pick_strategy(manifest, strategy, need_shift=True)
    entry = manifest["strategies"][label]
    cfg = get_strategy(entry["strategy"]).__class__(**entry["config"])
    new, _ = load_checkpoint(source)
    ref, _ = load_checkpoint(out / entry["members"][0])  # member 0 is the first reference
    if _signature(new) != _signature(ref):
        raise UserError(f"--source={source!r} has another architecture than the ensemble's "
                        f"members ({(ref.arch or {}).get('arch')}): allowed are sources of "
                        "the members' architecture")
    task = make_task(manifest["task"], data_dir=manifest.get("data_dir"))
    # min_steps 0: the epochs the strategy's stages trained (ensemble.engine.run_stage)
    train = {**manifest["train"], "min_steps": 0}
    before = member_probs(out, entry["members"], task)
    delta = {k: v for k, v in load_file(str(out / entry["delta"])).items()}
    index = len(entry["members"])
    t0 = time.perf_counter()  # as in the strategy: the shift and BN statistics, not I/O
    # probe_l2: the L2 the strategy's shifted members fitted their probes at (one fit, as
    # they did, instead of a pick on the grid; absent in manifests written before it)
    shifted = cfg.shift_member(new, delta, entry.get("alpha", cfg.alpha),
                               ref if cfg.head == "reference" else None, task,
                               int(manifest["seed"]), index, int(train.get("batch_size", 128)),
                               probe_l2=entry.get("probe_l2"))
    shift_s = time.perf_counter() - t0
    tiny = transfer(shifted, task, CONTINUE[cfg.scope_for(new)],
                    {**train, "epochs": cfg.tiny_epochs}, seed=int(manifest["seed"]), progress=progress)
    add_s = shift_s + tiny.metrics["train_time_s"] + tiny.metrics["feature_time_s"]
    result = {"strategy": label, "member": index, "add_time_s": add_s,
              "shift_time_s": shift_s, "member_test_acc": tiny.metrics["test_acc"]}
    if compare:
        full = transfer(new, task, "finetune", train, seed=int(manifest["seed"]),
                        progress=progress)
        full_s = full.metrics["train_time_s"] + full.metrics["feature_time_s"]
        result.update({"full_time_s": full_s, "time_ratio": add_s / max(full_s, 1e-9),
                       "full_member_test_acc": full.metrics["test_acc"]})
    from transferlab.sweep.artifacts import predict_probs

    p_new = predict_probs(tiny.model, task.x_test).cpu().numpy()[None]
    y = task.y_test.cpu().numpy()
    result["before"] = ensemble_metrics(before, y)
    result["after"] = ensemble_metrics(np.concatenate([before, p_new]), y)
    path = save_checkpoint(out / _folder(label) / f"member{index}", tiny.model,
                           checkpoint_meta(tiny, member=index, added_from=str(source)))
    entry["members"].append(str(path.relative_to(out)))
    entry.setdefault("added", []).append({"source": str(Path(source).resolve()),
                                          **{k: v for k, v in result.items()
                                             if k not in ("before", "after")}})
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return result
