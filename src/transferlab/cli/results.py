"""``transferlab results``: the aggregated table of a sweep database."""

from __future__ import annotations

import math
import sys

from transferlab.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "results", help="aggregate a sweep database: mean ± std over seeds per cell",
        description="Print one row per cell (the --by columns) with the mean ± std of a "
                    "metric over seeds and the number of finished trials n; the cell of best mean "
                    "VALIDATION accuracy is marked with * (chosen on val_acc whatever "
                    "--metric shows; none is marked without val_acc). Failed trials are not "
                    "counted (see --failed).")
    p.add_argument("db", help="SQLite database written by `transferlab sweep`")
    p.add_argument("--metric", default="test_acc",
                   help="metric column to aggregate (default test_acc; others: test_nll, "
                        "val_acc, train_time_s, ...)")
    p.add_argument("--by", default=None,
                   help="comma-separated grouping columns (default: the grid columns that "
                        "vary, e.g. protocol,depth)")
    p.add_argument("--sweep", default=None, help="only trials of this sweep name")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="PATH", help="write the table as CSV to PATH")
    out.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.add_argument("--failed", action="store_true",
                   help="list failed trials with the first line of their error instead")
    p.set_defaults(func=run)


def _fmt(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" if n < 2 or math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def run(args) -> int:
    from transferlab._atomic import write_text_atomic
    from transferlab.cli import print_json
    import pandas as pd

    from transferlab.sweep.results import aggregate, best_index, default_by, load_results

    given = [c.strip() for c in (args.by or "").split(",") if c.strip()]
    if len(set(given)) < len(given):  # before reading: a column twice is a typo, not a table
        dup = sorted({c for c in given if given.count(c) > 1})
        raise UserError(f"--by={args.by!r} is invalid: it names {', '.join(dup)} twice; allowed "
                        f"are distinct columns; e.g. --by {','.join(dict.fromkeys(given))}")
    if args.csv:  # before reading: the table must never overwrite the database it reads
        from transferlab._paths import check_output_file, database_files

        check_output_file(args.csv, "--csv", {"db": database_files(args.db)})
    df = load_results(args.db)
    if args.sweep is not None:
        names = sorted(df["sweep"].unique()) if len(df) else []
        if args.sweep not in names:
            raise UserError(f"--sweep={args.sweep!r} is invalid: allowed are {names}")
        df = df[df["sweep"] == args.sweep]
    if df.empty:
        raise UserError(f"db={args.db!r} holds no trials yet: run `transferlab sweep` first")
    if args.failed:
        failed = df[df["status"] == "failed"]
        cols = [c for c in ("sweep", "source", "protocol_spec", "seed") if c in failed]
        rows = [{**{c: failed.at[i, c] for c in cols},
                 "error": str(failed.at[i, "error"] or "").splitlines()[0]} for i in failed.index]
        if args.json:
            print_json(rows)
        else:
            for r in rows:
                print("  ".join(str(v) for v in r.values()))
            print(f"{len(rows)} failed trials; `transferlab sweep ... --retry-failed` reruns them")
        return 0
    from transferlab.sweep.failures import check_trials

    # every trial failed: TrialsFailed (exit 3) naming the count and each kind of cause
    failures = check_trials(df, f"db={args.db!r}")
    if failures:  # some failed: the causes first (stderr under --json: stdout is the JSON)
        print(failures, file=sys.stderr if args.json else sys.stdout)
    done = df[df["status"] == "done"]
    if done.empty:
        raise UserError(f"db={args.db!r}: none of its {len(df)} trials has finished, so there "
                        "is nothing to tabulate; run `transferlab sweep` to finish them")
    if args.metric in df.columns and done[args.metric].notna().any() and \
            pd.to_numeric(done[args.metric], errors="coerce").isna().all():
        numeric = [c for c in done.columns if c not in ("key", "error", "seed") and pd.api
                   .types.is_numeric_dtype(done[c]) and done[c].notna().any()]
        raise UserError(f"--metric={args.metric!r} is invalid: it is not a numeric column; "
                        f"allowed are {', '.join(numeric)}")
    by = [c.strip() for c in args.by.split(",") if c.strip()] if args.by else default_by(df)
    table = aggregate(df, by=by, metric=args.metric)
    # The "best" cell is chosen on validation: marking the best test mean would invite
    # picking on the test split. Cells are matched by their --by values.
    def keys(t: pd.DataFrame) -> list[tuple]:
        return [tuple(r) for r in t[by].astype(object).where(t[by].notna(), None)
                .itertuples(index=False)]

    best_key = None
    if "val_acc" in done.columns and pd.to_numeric(done["val_acc"], errors="coerce").notna().any():
        vt = aggregate(df, by=by, metric="val_acc")
        b = best_index(vt, "val_acc")
        best_key = None if b is None else keys(vt.loc[[b]])[0]
    table["best"] = [k == best_key for k in keys(table)]
    if args.csv:
        write_text_atomic(args.csv, table.to_csv(index=False))
        print(f"wrote {len(table)} cells to {args.csv}")
        return 0
    if args.json:
        print_json([{k: (None if isinstance(v, float) and math.isnan(v) else v)
                     for k, v in rec.items()} for rec in table.astype(object).where(
                         table.notna(), None).to_dict("records")])
        return 0
    shown = table[by].astype(object).where(table[by].notna(), "—")
    shown[args.metric] = [_fmt(m, s, n) for m, s, n in zip(table["mean"], table["std"],
                                                            table["n"])]
    shown["n"] = table["n"]
    shown[""] = ["*" if b else "" for b in table["best"]]
    print(shown.to_string(index=False))
    n_failed = int((df["status"] == "failed").sum())
    if n_failed:
        print(f"({n_failed} failed trials not counted; see --failed)")
    return 0
