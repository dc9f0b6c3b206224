"""The ``transferlab`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``func=run``. ``UserError`` becomes one line on stderr and exit 2;
``TrialsFailed`` (every trial of a sweep or study failed) the same line and exit 3.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from transferlab.errors import UserError

# Order here is the order in `transferlab --help`.
SUBCOMMANDS = ["datasets", "pretrain", "transfer", "sweep", "results", "study", "similarity",
               "weights", "rank", "ensemble", "depth", "advise"]


class _Parser(argparse.ArgumentParser):
    """argparse with errors on ONE line (usage is one ``--help`` away), exit code 2."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    from transferlab import __version__

    parser = _Parser(
        prog="transferlab",
        description="How should I transfer my pretrained network? Run transfer protocols, "
                    "sweeps and studies, and look inside the results.")
    parser.add_argument("--version", action="version", version=f"transferlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        # A subcommand that fails to import is a bug to see, not a command to hide.
        importlib.import_module(f"transferlab.cli.{name}").register(sub)
    return parser


def one_line(message: str) -> str:
    """A message of several lines (a spec's list of problems, a YAML parser's excerpt) as
    one line: a header ending in ':' is followed by its items, items are joined by '; '."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    head, rest = (lines[0], lines[1:]) if lines[0].endswith(":") else ("", lines)
    return (head + " " if head else "") + "; ".join(rest)


def print_json(obj) -> None:
    """Print a machine-readable result (used by every ``--json`` flag): strict JSON, with
    non-finite numbers (a diverged run's NaN loss) as null rather than NaN/Infinity tokens."""
    from transferlab.cli._common import json_safe

    print(json.dumps(json_safe(obj), indent=2, sort_keys=True, default=str, allow_nan=False))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:  # TrialsFailed (every trial failed) is one too: exit 3
        print(f"transferlab {args.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print(f"transferlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
