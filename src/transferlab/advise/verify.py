"""``--verify``: a successive-halving race of the top candidates on the sweep engine.

Rung r trains the surviving SGD candidates for ``budget.rungs[r]`` x their full epochs
(every seed); the solver candidates (linear-probe, probe:n: L-BFGS, no epochs) run once, in the
first rung, and keep their result. After each rung but the last, the best
``ceil(n / ETA)`` (a quarter) of the SGD candidates by mean VALIDATION accuracy go on, and
the best solver waits in the final (it is complete; a partly trained fine-tune is not its
peer). The winner is the best of the last pool on validation; test accuracy is reported,
never used. Trials are keyed by their
config in ``OUT/advise.sqlite``, so a rerun resumes the race.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import pandas as pd

from transferlab.advise.budgets import AdviseBudget
from transferlab.advise.rules import Candidate
from transferlab.sweep.failures import check_trials

# Each rung keeps the best quarter (rounded up): with 4 candidates one finalist trains the
# full epochs (measured: keeping the best third, two finalists, cost 82% of training every
# candidate on MNIST 5-9 with 100 per class; benchmarks/bench_advise.py).
ETA = 4
DB_NAME = "advise.sqlite"


def _source_path(source, folder: Path) -> str:
    """A checkpoint path the sweep can read (a BlockModel is saved into ``folder``)."""
    from transferlab.checkpoint import save_checkpoint

    if isinstance(source, (str, Path)):
        return str(Path(source).resolve())
    path = folder / "source"
    save_checkpoint(path, source, {"task": None, "protocol": "advise-input"})
    return str(path.resolve()) + ".safetensors"


def _specs(cands: list[Candidate], epochs: int, b: AdviseBudget, task: str, src: str,
           seeds: list[int], data_dir: str | None, rung: int) -> list[dict]:
    """One sweep spec per lr_mult group (the grid crosses protocols with one train)."""
    groups: dict = {}
    for c in cands:
        groups.setdefault(c.lr_mult, []).append(c.protocol)
    specs = []
    for lr_mult, protocols in groups.items():
        train = b.train(b.epochs if lr_mult is None else epochs)
        if lr_mult is not None:
            train["lr_mult"] = lr_mult
        specs.append({"name": f"advise-rung{rung}", "target": task, "data_dir": data_dir,
                      "sources": {"source": {"checkpoint": src}},
                      "axes": {"protocol": list(dict.fromkeys(protocols)), "seed": seeds},
                      "train": train})
    return specs


def _rung(cands, epochs, b, task, src, seeds, data_dir, db, rung, progress, workers,
          frames: list | None = None) -> dict[str, dict]:
    """One rung's results per candidate label; each sweep's table is appended to
    ``frames`` (for the race's failure check)."""
    from transferlab.sweep import run_sweep

    out: dict[str, dict] = {}
    for spec in _specs(cands, epochs, b, task, src, seeds, data_dir, rung):
        t0 = time.perf_counter()
        df = run_sweep(spec, db, workers=workers, progress=progress)
        wall = time.perf_counter() - t0
        if frames is not None:
            frames.append(df)
        for c in cands:
            if c.lr_mult != spec["train"].get("lr_mult"):
                continue
            rows = df[df["protocol_spec"] == c.protocol]
            done = rows[rows["status"] == "done"]
            val = pd.to_numeric(done.get("val_acc"), errors="coerce")
            test = pd.to_numeric(done.get("test_acc"), errors="coerce")
            out[c.label] = {
                "epochs": None if c.solver else epochs, "n": int(len(done)),
                "val_acc": float(val.mean()) if len(done) else None,
                "test_acc": float(test.mean()) if len(done) else None,
                "trial_time_s": float(pd.to_numeric(rows["duration_s"]).sum()),
                "sweep_wall_s": wall,
                "errors": [e for e in rows["error"].dropna().tolist()][:1]}
    return out


def race(source, task: str, cands: list[Candidate], b: AdviseBudget, seeds: list[int],
         folder: Path | None, data_dir: str | None, progress: bool = True,
         workers: int | None = None) -> tuple[list[dict], dict]:
    """Run the race; returns (per-candidate results, summary with winner and costs)."""
    tmp = None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="transferlab-advise-")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        src = _source_path(source, folder)
        db = folder / DB_NAME
        results = {c.label: {**c.to_dict(), "rungs": [], "eliminated_at": None}
                   for c in cands}
        pool = list(cands)
        full = max([c.epochs for c in cands if c.epochs] or [b.epochs])
        rung_epochs = b.rung_epochs(full)
        frames: list = []
        for r, epochs in enumerate(rung_epochs):
            todo = [c for c in pool if not (c.solver and results[c.label]["rungs"])]
            got = _rung(todo, epochs, b, task, src, seeds, data_dir, db, r, progress,
                        workers, frames) if todo else {}
            if r == 0:  # every first-rung trial failed: TrialsFailed naming the causes
                check_trials(frames, "advise --verify (rung 0)")
            for label, res in got.items():
                results[label]["rungs"].append({"rung": r, **res})
            if r == len(rung_epochs) - 1:
                break
            pool = _halve(pool, results, cands)
            for c in cands:
                if c not in pool and results[c.label]["eliminated_at"] is None:
                    results[c.label]["eliminated_at"] = r
        verified = []
        for label, res in results.items():
            last = res["rungs"][-1] if res["rungs"] else {}
            verified.append({**res, "val_acc": last.get("val_acc"),
                             "test_acc": last.get("test_acc"),
                             "epochs": last.get("epochs"),
                             "wall_time_s": sum(x["trial_time_s"] for x in res["rungs"]),
                             "finalist": res["eliminated_at"] is None})
        finalists = [v for v in verified if v["finalist"]]
        win = min(finalists, key=lambda v: _order(v, list(results).index(v["label"])))
        advised = verified[0]
        summary = {"winner": win["label"], "winner_protocol": win["protocol"],
                   "winner_val_acc": win["val_acc"], "winner_test_acc": win["test_acc"],
                   "advised": advised["label"], "advised_val_acc": advised["val_acc"],
                   "overturned": win["label"] != advised["label"],
                   "rung_epochs": rung_epochs, "eta": ETA, "seeds": seeds,
                   "trial_time_s": sum(v["wall_time_s"] for v in verified),
                   "wall_time_s": time.perf_counter() - t0,
                   "database": None if tmp else str(db),
                   "trial_failures": check_trials(frames, "advise --verify")}
        return verified, summary
    finally:
        if tmp is not None:
            tmp.cleanup()


def _halve(pool: list[Candidate], results: dict, cands: list[Candidate]) -> list[Candidate]:
    """Who goes on after a rung. SGD candidates are compared with each other only (all at
    the same fraction of their epochs) and the best quarter, rounded up, goes on; the best
    solver (an L-BFGS probe, already at its full fit) waits in the final. Ranking a full
    probe against fine-tunes at 15% of their epochs let the probe win every race it
    entered (12 of 12 in the scoreboard's first run), so no fine-tune ever finished."""
    key = lambda c: _order(results[c.label], cands.index(c))  # noqa: E731
    sgd = sorted([c for c in pool if not c.solver], key=key)
    solvers = sorted([c for c in pool if c.solver], key=key)
    keep = solvers[:1] + sgd[:math.ceil(len(sgd) / ETA)]
    return [c for c in cands if c in keep]


def _order(res: dict, rank: int) -> tuple[float, int]:
    """Sort key: higher validation accuracy first; equal ones (to 1e-6: a float32 0.8 and
    a float64 0.8 are a tie) in the advisor's order."""
    return -round(_val(res), 6), rank


def _val(res: dict) -> float:
    """The mean validation accuracy of a candidate's last rung (-1 if it has none)."""
    v = ((res.get("rungs") or [{}])[-1]).get("val_acc")
    return -1.0 if v is None or math.isnan(v) else float(v)
