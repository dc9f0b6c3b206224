"""Arguments shared by several subcommands, generated from the config dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from transferlab.errors import UserError
from transferlab.report.outputs import (  # noqa: F401 - the subcommands' output checks
    check_out_checkpoint, check_out_dir, json_safe)
from transferlab.train import TrainConfig


def _parse_optional(kind):
    def conv(text: str):
        return None if text.lower() == "none" else kind(text)
    conv.__name__ = kind.__name__
    return conv


def add_train_args(parser: argparse.ArgumentParser, **defaults) -> None:
    """One ``--flag`` per ``TrainConfig`` field, with the field's help text."""
    group = parser.add_argument_group("training budget (TrainConfig)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = defaults.get(f.name, f.default)
        hint = hints[f.name]
        if hint is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                               help=f.metadata["help"].replace("%", "%%"))
            continue
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
        conv = _parse_optional(base) if typing.get_args(hint) else base
        group.add_argument(flag, type=conv, default=default,
                           help=f.metadata["help"].replace("%", "%%"))


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


MAX_SEED = 2**63 - 1  # what torch.manual_seed and numpy's generators both accept


def seed_arg(text: str) -> int:
    """argparse type of seeds: an integer in 0..MAX_SEED (a 25-digit seed is refused here,
    not deep inside torch)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is out of range: allowed is 0..{MAX_SEED}")
    return value


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="folder holding the datasets (unset: $TRANSFERLAB_DATA)")
    parser.add_argument("--seed", type=seed_arg, default=0,
                        help=f"random seed (an integer 0..{MAX_SEED})")
    parser.add_argument("--json", action="store_true", help="print a machine-readable result")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_json_arg(name: str, text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{name}={text!r} is invalid: allowed is a JSON object such as "
                        f"'{{\"width\": 32}}' ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise UserError(f"{name}={text!r} is invalid: allowed is a JSON object")
    return value


def summary_line(metrics: dict) -> str:
    return (f"test_acc={metrics['test_acc']:.4f} test_nll={metrics['test_nll']:.4f} "
            f"trainable={metrics['trainable_params']:,} frozen={metrics['frozen_params']:,} "
            f"time={metrics['train_time_s']:.1f}s outcome={metrics['outcome']}"
            + (f" ({metrics['reason']})" if metrics.get("reason") else ""))


DIVERGED_EXIT = 3  # a run whose loss, weights or test NLL are not finite (README)


def report_diverged(command: str, res, as_json: bool) -> int:
    """A diverged run (nothing was saved): its result as JSON with ``--json``, one line on
    stderr; returns the exit code."""
    import sys

    from transferlab.cli import print_json

    metrics = res.metrics
    if as_json:
        print_json({"checkpoint": None, "metrics": metrics, "config": res.config})
    reason = metrics.get("reason") or "a non-finite result"
    print(f"transferlab {command}: error: training diverged after "
          f"{metrics.get('epochs_run', 0)} epoch(s): {reason}; nothing was saved",
          file=sys.stderr)
    return DIVERGED_EXIT
