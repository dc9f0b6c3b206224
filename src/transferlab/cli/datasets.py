"""``transferlab datasets``: which datasets are available, where, and how big."""

from __future__ import annotations

import argparse

from transferlab.cli import print_json
from transferlab.data import dataset_status
from transferlab.data.paths import DATA_ENV


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "datasets", help="list known datasets, where they were found and their sizes",
        description="List every known dataset (digits, mnist, kmnist, cifar10): where its files "
                    f"were found, or which files were looked for where. Data directories come "
                    f"from --data-dir or ${DATA_ENV}; a file F of dataset NAME is looked up as "
                    "DIR/NAME/F, then DIR/F. Nothing large is decoded.")
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help=f"data directory (several joined by ':'); default ${DATA_ENV}")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=run)


def _shape(row: dict) -> str:
    return "x".join(str(s) for s in row["image_shape"]) if row["image_shape"] else "-"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from transferlab.errors import UserError

    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UserError(f"--data-dir={args.data_dir!r} is invalid: "
                        f"{'it is a file' if Path(args.data_dir).exists() else 'no such folder'}"
                        "; allowed is an existing folder holding the datasets (see "
                        "`transferlab datasets --help`); check the path")
    rows = dataset_status(args.data_dir)
    if args.json:
        print_json(rows)
        return 0
    header = f"{'name':<8} {'status':<8} {'train':>6} {'test':>6} {'classes':>7} {'HxWxC':<8} where"
    print(header)
    for r in rows:
        status = "error" if r["error"] else ("found" if r["found"] else "missing")
        if r["found"] and r["cached"]:
            status = "verified"  # decoded and checked once (labels, shapes), now cached
        cells = [str(r[k]) if r[k] is not None else "-" for k in ("n_train", "n_test",
                                                                  "num_classes")]
        where = r["path"] or "-"
        print(f"{r['name']:<8} {status:<8} {cells[0]:>6} {cells[1]:>6} {cells[2]:>7} "
              f"{_shape(r):<8} {where}")
    if any(r["found"] and not r["cached"] and not r["error"] for r in rows):
        print("  (verified: decoded and checked, cached; found: files present, sizes read from "
              "their headers, not yet decoded — the first task that uses it verifies it)")
    notes = [r["missing"] or r["error"] for r in rows if r["missing"] or r["error"]]
    for note in notes:
        print(f"  - {note}")
    return 0
