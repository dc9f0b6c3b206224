"""Reading a sweep store back as tables: one row per trial, and mean ± std per cell."""

from __future__ import annotations

import os

import pandas as pd

from transferlab.errors import UserError
from transferlab.sweep.store import Store

# Metrics where smaller is better (for marking the best cell).
LOWER_IS_BETTER = ("nll", "loss", "time", "error")


def frame_from_rows(rows: list[dict]) -> pd.DataFrame:
    """One row per trial: sweep, key, status, error, grid labels, config, metrics, kept.

    Labels (source, protocol, depth, seed, other axes) come first; ``protocol_spec`` is the
    full name ("freeze:3"); TrainConfig fields appear as ``train.<field>``; a metric whose
    name clashes with a label (the plan's ``depth``) appears as ``metrics.<name>``; ``kept``
    lists the outputs kept ("probs,weights"; see ``load_trial_probs``) or is None.
    """
    records, labels = [], {}
    for r in rows:
        labels.update(dict.fromkeys(r["labels"]))
        cfg = r["config"]
        rec: dict = {"sweep": r["sweep"], "key": r["key"], "status": r["status"]}
        rec.update(r["labels"])
        rec.update({"protocol_spec": cfg.get("protocol"), "task": cfg.get("task"),
                    "source_sha256": cfg.get("source_sha256")})
        rec.update({f"train.{k}": v for k, v in (cfg.get("train") or {}).items()})
        for k, v in (r["metrics"] or {}).items():
            if isinstance(v, (list, tuple)):
                v = ",".join(map(str, v))
            rec[f"metrics.{k}" if k in rec else k] = v
        kept = r.get("artifacts") or {}
        rec.update({"error": r["error"], "kept": ",".join(sorted(kept)) or None,
                    "duration_s": r["duration_s"],
                    "finished_at": r["finished_at"],
                    "host": (r.get("provenance") or {}).get("host")})
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    if "depth" in df:
        df["depth"] = df["depth"].astype("Int64")  # None for depth-less protocols
    df.attrs["labels"] = list(labels)
    return df


def load_results(db_path: str | os.PathLike) -> pd.DataFrame:
    """Every trial stored in ``db_path`` (see ``frame_from_rows`` for the columns)."""
    import sqlite3

    try:
        with Store(db_path, readonly=True) as store:
            return frame_from_rows(store.rows())
    except sqlite3.DatabaseError as exc:  # an empty file (no tables) or a truncated one
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"db={str(db_path)!r} is not a readable sweep store ({first}): allowed "
                        "is a database written by `transferlab sweep`; it is empty or "
                        "truncated: rerun the sweep into a new --db") from None


def aggregate(df: pd.DataFrame, by: list[str] | str = ("protocol", "depth"),
              metric: str = "test_acc") -> pd.DataFrame:
    """Mean, std (over seeds and anything else not in ``by``) and n of ``metric`` per cell.

    Only finished trials (status "done") count. Cells are sorted by ``by``; a missing
    value (a protocol without depth) forms its own cell.
    Returns columns ``by + [mean, std, n]``; std is NaN when n == 1.
    """
    by = [b for b in ([by] if isinstance(by, str) else list(by)) if b]
    if df.empty:
        return pd.DataFrame(columns=[*by, "mean", "std", "n"])
    missing = [c for c in [*by, metric] if c not in df.columns]
    if missing:
        choices = [c for c in df.columns if c not in ("key", "error")]
        raise UserError(f"columns {missing} are not in the results: allowed are "
                        f"{', '.join(choices)}; check --by/--metric")
    done = df[df["status"] == "done"]
    values = pd.to_numeric(done[metric], errors="coerce")
    if not by:
        return pd.DataFrame({"mean": [values.mean()], "std": [values.std()],
                             "n": [int(values.count())]})
    grouped = values.groupby([done[c] for c in by], dropna=False, sort=True)
    out = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    out["n"] = out["n"].astype(int)
    return out


def best_index(table: pd.DataFrame, metric: str):
    """Row label of the best cell of an ``aggregate`` table (None if all means are NaN)."""
    means = pd.to_numeric(table["mean"], errors="coerce")
    if means.notna().sum() == 0:
        return None
    lower = any(word in metric for word in LOWER_IS_BETTER)
    return means.idxmin() if lower else means.idxmax()


def default_by(df: pd.DataFrame) -> list[str]:
    """Grid columns that vary across trials (seed excluded: it is what is averaged over)."""
    first = ["sweep", "source", "target", "protocol", "depth"]
    labels = df.attrs.get("labels") or [c for c in first if c in df.columns]
    cols = [c for c in first if c in df.columns] + \
        [c for c in labels if c not in first and c != "seed" and c in df.columns]
    varying = [c for c in cols if df[c].nunique(dropna=False) > 1]
    return varying or [c for c in ("protocol", "depth") if c in df.columns]
