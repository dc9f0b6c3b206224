"""The ``transferlab`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func=run``. ``UserError`` becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from transferlab.errors import UserError

# Order here is the order in `transferlab --help`.
SUBCOMMANDS = ["datasets", "pretrain", "transfer", "sweep", "results", "study", "similarity",
               "weights", "rank"]


def build_parser() -> argparse.ArgumentParser:
    from transferlab import __version__

    parser = argparse.ArgumentParser(
        prog="transferlab",
        description="How should I transfer my pretrained network? Run transfer protocols, "
                    "sweeps and studies, and look inside the results.")
    parser.add_argument("--version", action="version", version=f"transferlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"transferlab.cli.{name}")
        except ModuleNotFoundError as exc:  # a subcommand still being written is skipped
            if exc.name != f"transferlab.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def print_json(obj) -> None:
    """Print a machine-readable result (used by every ``--json`` flag)."""
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"transferlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"transferlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
