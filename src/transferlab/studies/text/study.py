"""The text study end to end: design -> sweeps (resumable) -> statistics -> findings -> report.

Question (the practitioner's guide, second half): for a pretrained sentence encoder, is the
feature-based approach (``linear-probe`` on the pooled embedding, ELMo's ``layer-mix``) as
good as fine-tuning (``freeze:n``, ``finetune`` with ``lr_mult`` 1.0 and 0.1), and at what
cost? Conditions run on the sweep engine into ``OUT/text.sqlite`` (a rerun resumes: done
trials are not run again); per (regime, condition) the mean test accuracy with a 95%
t-interval over episodes (few-shot) or seeds (full set), wall time per trial; findings by
paired tests over the shared units, Holm-corrected per family; ``text.png``,
``results.json`` (with provenance) and a self-contained ``report.html``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from transferlab._atomic import write_text_atomic
from transferlab.errors import UserError
from transferlab.provenance import provenance
from transferlab.studies.kit.stats import mean_std, paired_family, t_interval
from transferlab.studies.text.config import TextConfig

DB_NAME = "text.sqlite"
# Budgets of the trained protocols (the feature-based ones have no epochs: L-BFGS).
BUDGETS = {
    "quick": {"fewshot_epochs": 10, "full_epochs": 1, "depths": [3, 5], "full_seeds": 1},
    "standard": {"fewshot_epochs": 20, "full_epochs": 3, "depths": [1, 3, 5], "full_seeds": 2},
}
# min_steps 0: the budgets' epochs as designed (fewshot_epochs, full_epochs)
TRAIN = {"optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.01, "batch_size": 32,
         "min_steps": 0}
LR_MULTS = [1.0, 0.1]


def default_out(task: str) -> Path:
    safe = task.split(":")[0].replace("/", "_")
    return Path("runs") / f"text-{safe}"


def _source_checkpoint(cfg: TextConfig, out: Path) -> str:
    """The source as a checkpoint file the sweep can hash: a built-in name is saved once."""
    from transferlab.checkpoint import (builtin_source, checkpoint_paths, load_checkpoint,
                                        save_checkpoint)

    if not builtin_source(cfg.source):
        return str(Path(cfg.source).resolve())
    path = out / "sources" / cfg.source
    if not checkpoint_paths(path)[1].exists():
        model, meta = load_checkpoint(cfg.source)
        save_checkpoint(path, model, meta)
    return str(path.resolve())


def _check_source(cfg: TextConfig) -> None:
    """The source runs on the task, tokenizer included: an image checkpoint or another
    vocabulary is one line here, before the output folder or any trial exists."""
    from transferlab.checkpoint import load_checkpoint
    from transferlab.data import make_task
    from transferlab.models.compat import check_runs_on

    target = f"{cfg.task}:max_length={cfg.max_length}" + (f":per_class={min(cfg.ks)}"
                                                          if cfg.ks else "")
    task = make_task(target, data_dir=cfg.data_dir, progress=False)
    check_runs_on(load_checkpoint(cfg.source)[0], task.x_train, "--source", str(task.spec))


def regimes(cfg: TextConfig) -> list[str]:
    return [f"k={k}" for k in cfg.ks] + (["full"] if cfg.full else [])


def sweep_specs(cfg: TextConfig, source: str) -> list[dict]:
    """Three specs per regime: feature-based, freeze:n, finetune x lr_mult."""
    b = BUDGETS[cfg.budget]
    depths = cfg.depths or b["depths"]
    specs = []
    for k in cfg.ks + ([None] if cfg.full else []):
        regime = f"k={k}" if k else "full"
        target = f"{cfg.task}:max_length={cfg.max_length}" + (f":per_class={k}" if k else "")
        units = {"episode": list(range(cfg.episodes))} if k else {"seed": b["full_seeds"]}
        epochs = b["fewshot_epochs"] if k else b["full_epochs"]
        batch = min(TRAIN["batch_size"], 16) if k and k <= 10 else TRAIN["batch_size"]
        ft = {**TRAIN, "epochs": epochs, "batch_size": batch}
        common = {"target": target, "sources": {"encoder": {"checkpoint": source}},
                  "data_dir": cfg.data_dir}
        specs += [
            {**common, "name": f"text-{regime}-features",
             "axes": {"protocol": ["linear-probe", "layer-mix"], **units}, "train": {}},
            {**common, "name": f"text-{regime}-freeze",
             "axes": {"protocol": ["freeze"], "depth": depths, **units}, "train": ft},
            {**common, "name": f"text-{regime}-finetune",
             "axes": {"protocol": ["finetune"], "lr_mult": LR_MULTS, **units}, "train": ft},
        ]
    return specs


def condition(row) -> str:
    """A readable condition name: linear-probe, layer-mix, freeze:3, finetune@1.0."""
    proto = str(row["protocol"])
    if proto.startswith("finetune"):
        lr = row.get("lr_mult")
        return f"finetune@{float(lr):g}" if lr is not None and pd.notna(lr) else "finetune"
    depth = row.get("depth")
    if ":" not in proto and depth is not None and pd.notna(depth):
        return f"{proto}:{int(depth)}"  # a depth axis: protocol "freeze", depth 3
    return proto


def _run_sweeps(cfg: TextConfig, out: Path, progress: bool) -> tuple[pd.DataFrame, str | None]:
    """The finished trials (with condition, unit, wall_s) and the failed trials' report
    line (None if none failed; ``TrialsFailed`` if all did)."""
    from transferlab.sweep import run_sweep
    from transferlab.sweep.failures import check_trials

    source = _source_checkpoint(cfg, out)
    frames = []
    for spec in sweep_specs(cfg, source):
        regime = spec["name"].split("-")[1]
        f = run_sweep(spec, out / DB_NAME, workers=cfg.workers, backend=cfg.backend,
                      progress=progress)
        if not f.empty:
            frames.append(f.assign(regime=regime))
    if not frames:
        raise UserError("the study produced no trials; check --shots and --full")
    df = pd.concat(frames, ignore_index=True)
    failures = check_trials(df, "study text")  # every trial failed: TrialsFailed
    df = df.copy()  # failed rows stay: failed_trials counts them by condition below
    df["condition"] = [condition(r) for _, r in df.iterrows()]
    df["unit"] = [int(r["episode"]) if "episode" in df and pd.notna(r.get("episode"))
                  else int(r["seed"]) for _, r in df.iterrows()]
    df["wall_s"] = pd.to_numeric(df["train_time_s"], errors="coerce").fillna(0) + \
        pd.to_numeric(df.get("feature_time_s", 0), errors="coerce").fillna(0)
    return df, failures


def failed_trials(df: pd.DataFrame) -> dict:
    """The trials that did not finish (failed, or a diverged outcome), counted, never
    silently dropped: {n, of, by_condition: [{regime, condition, n, error}]} (``error``:
    the first failure's cause in that cell)."""
    outcome = df["outcome"] if "outcome" in df else pd.Series("ok", index=df.index)
    bad = df[(df["status"] != "done") | (outcome.fillna("ok") != "ok")]
    cells = []
    for (regime, cond), g in bad.groupby(["regime", "condition"], sort=False):
        first = g.iloc[0]
        why = first.get("error") if first.get("status") != "done" else first.get("reason")
        cells.append({"regime": regime, "condition": cond, "n": len(g),
                      "error": str(why) if why is not None and pd.notna(why) else "unknown"})
    return {"n": len(bad), "of": len(df), "by_condition": cells}


def statistics(df: pd.DataFrame) -> dict:
    """regime -> condition -> {mean, std, ci, n, wall_s, values {unit: acc}}."""
    out: dict = {}
    for (regime, cond), g in df.groupby(["regime", "condition"], sort=False):
        acc = [float(v) for v in g["test_acc"]]
        mean, std = mean_std(acc)
        out.setdefault(regime, {})[cond] = {
            "mean": mean, "std": std, "ci": t_interval(acc), "n": len(acc),
            "wall_s": float(g["wall_s"].mean()),
            "values": {int(u): float(a) for u, a in zip(g["unit"], g["test_acc"])}}
    return out


def findings(stats: dict) -> list[dict]:
    """Three claims, each a family over regimes (paired over units, Holm within)."""
    claims = [("feature-based (layer-mix) vs fine-tuning (finetune@0.1)", "layer-mix",
               "finetune@0.1"),
              ("layer-mix vs linear-probe", "layer-mix", "linear-probe"),
              ("finetune lr_mult 0.1 vs 1.0", "finetune@0.1", "finetune@1")]
    out = []
    for title, a, b in claims:
        groups = [(regime, conds[a]["values"], conds[b]["values"])
                  for regime, conds in stats.items() if a in conds and b in conds]
        rows = paired_family(groups, label="regime")
        out.append({"claim": title, "a": a, "b": b, "tests": rows,
                    "tested": any(r.get("p") is not None for r in rows)})
    return out


def run_config(cfg: TextConfig, progress: bool = True) -> dict:
    """Run (or resume) the study; writes results.json, text.png and report.html in out."""
    from transferlab.studies.text import plot, report

    out = Path(cfg.out) if cfg.out else default_out(cfg.task)
    _check_source(cfg)
    out.mkdir(parents=True, exist_ok=True)
    df, failures = _run_sweeps(cfg, out, progress)
    failed = failed_trials(df)
    df = df[df["status"] == "done"]
    if "outcome" in df:  # a diverged trial has no accuracy to average
        df = df[df["outcome"].fillna("ok") == "ok"]
    stats = statistics(df)
    found = findings(stats)
    files = {"results": str(out / "results.json"), "figure": str(out / "text.png"),
             "report": str(out / "report.html"), "db": str(out / DB_NAME)}
    result = {"trial_failures": failures,
              "config": {k: v for k, v in vars(cfg).items()}, "budget": BUDGETS[cfg.budget],
              "train": TRAIN, "regimes": regimes(cfg), "stats": stats, "findings": found,
              "failed": failed,
              "provenance": provenance(), "files": files}
    png = plot.figure(stats, regimes(cfg))
    Path(files["figure"]).write_bytes(png)
    write_text_atomic(files["results"], json.dumps(result, indent=1, default=str))
    report.write_report(files["report"], result, png)
    return result


def run(out: str | os.PathLike | None = None, **kwargs) -> dict:
    """``run_config(TextConfig(out=out, **kwargs))``."""
    return run_config(TextConfig(out=str(out) if out else None, **kwargs), progress=False)


def summarize(result: dict) -> tuple[list[str], dict]:
    lines = []
    failed = result.get("failed") or {}
    if failed.get("n"):
        lines.append(f"{failed['n']} of {failed['of']} trials failed or diverged and are not "
                     "counted: " + "; ".join(f"{c['regime']} {c['condition']}: {c['n']} "
                                             f"({c['error']})"
                                             for c in failed["by_condition"]))
    for regime in result["regimes"]:
        for cond, s in result["stats"].get(regime, {}).items():
            lines.append(f"{regime:>6} {cond:<14} acc {s['mean']:.4f} (n={s['n']}) "
                         f"wall {s['wall_s']:.1f}s")
    for f in result["findings"]:
        for t in f["tests"]:
            lines.append(f"{f['claim']} [{t['regime']}]: diff {t['mean_diff']:+.4f} "
                         f"p_holm={t['p_holm']}")
    lines.append(f"report: {result['files']['report']}")
    return lines, result
