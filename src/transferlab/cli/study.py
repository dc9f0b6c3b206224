"""``transferlab study NAME``: run a registered study end to end (see studies.kit.registry).

Each study's flags are generated from its config dataclass: one ``--flag`` per field, with
the field's ``metadata["help"]``, ``metadata["choices"]`` and ``metadata["type"]`` (a
text -> value parser) where given, else the type hint (``int``, ``float``, ``str``,
``bool``, optionally ``| None``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import re
import sys
import typing

from transferlab.errors import bad_value


def _arg_type(f: dataclasses.Field, hint):
    if "type" in f.metadata:
        return f.metadata["type"]
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    return base if base in (int, float, str) else str


def add_config_args(parser: argparse.ArgumentParser, config: type) -> None:
    """One ``--flag`` per field of the dataclass ``config``."""
    hints = typing.get_type_hints(config)
    for f in dataclasses.fields(config):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"].replace("%", "%%")
        if hints[f.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=f.default, help=help_text)
            continue
        parser.add_argument(flag, dest=f.name, type=_arg_type(f, hints[f.name]),
                            default=f.default, choices=f.metadata.get("choices"),
                            help=help_text)


def _one_line_error(names: list[str]):
    """argparse's error() prints the usage too; an unknown study should be one line."""
    def error(message: str):
        unknown = re.search(r"invalid choice: '([^']*)'", message)
        if unknown:
            message = str(bad_value("study", unknown.group(1), ", ".join(names),
                                    "run `transferlab study --help` for what each does"))
        print(f"transferlab study: error: {message}", file=sys.stderr)
        sys.exit(2)
    return error


def register(sub) -> None:
    from transferlab.studies import all_studies

    studies = all_studies()
    p = sub.add_parser(
        "study", help="run a packaged study (sweeps + figures + HTML report)",
        description="Run a packaged study end to end: its sweeps, curves, findings decided "
                    "by statistical tests, figures and a self-contained report.html. "
                    "Reruns resume. `transferlab study NAME --help` shows a study's flags.")
    # An unknown NAME fails inside p's parse (the subparsers action): one line, exit 2.
    p.error = _one_line_error(list(studies))
    names = p.add_subparsers(dest="study", metavar="NAME", title="studies")
    for name, study in studies.items():
        sp = names.add_parser(name, help=study.summary, description=study.description,
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_config_args(sp, study.config)
        sp.add_argument("--workers-per-gpu", type=int, default=None,
                        help="trials in flight on each GPU in the study's sweeps (default: "
                             "$TRANSFERLAB_WORKERS_PER_GPU, else from the GPU's free memory "
                             "and the cores; see docs/sweeps.md)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument("--json", action="store_true", help="print a machine-readable summary")
        sp.set_defaults(func=run)
    p.set_defaults(func=_no_study(p))


def _no_study(parser: argparse.ArgumentParser):
    def run_nothing(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2
    return run_nothing


@contextlib.contextmanager
def _workers_per_gpu(value: int | None):
    """Every sweep of the study (whatever its own arguments) reads the environment's value
    when it picks its workers (sweep/backends/gpu.py); set for the study's run only."""
    from transferlab.sweep.backends.gpu import WORKERS_PER_GPU_ENV, check_workers_per_gpu

    check_workers_per_gpu(value)
    if value is None:
        yield
        return
    before = os.environ.get(WORKERS_PER_GPU_ENV)
    os.environ[WORKERS_PER_GPU_ENV] = str(value)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(WORKERS_PER_GPU_ENV, None)
        else:
            os.environ[WORKERS_PER_GPU_ENV] = before


# Fields of study configs that multiply the number of trials: counts and comma lists.
_COUNTS = ("episodes", "seeds", "members")
_LISTS = ("shots", "sizes", "correlations", "split_seeds", "depths", "protocols")


def _check_plan_size(config) -> None:
    """The study's trial count (the product of its counts and lists) within the memory and
    time bound, before its design lists a single episode or seed."""
    from transferlab._memory import check_count

    factors = {f"--{n.replace('_', '-')}": v for n in _COUNTS
               if isinstance(v := getattr(config, n, None), int) and not isinstance(v, bool)}
    factors.update({f"--{n.replace('_', '-')}": len(v) for n in _LISTS
                    if isinstance(v := getattr(config, n, None), (list, tuple)) and v})
    if not factors or min(factors.values()) < 1:  # a 0 or negative count: the study says so
        return
    total = math.prod(factors.values())
    param = max(factors, key=factors.get)  # the largest factor is the one to shrink
    what = " x ".join(f"{k} {v:,}" for k, v in factors.items())
    check_count(param, factors[param], total // factors[param], what)


def _check_out(config) -> None:
    """A given --out: a folder (not a file), inside a folder, writable; before any work.
    (A study resumes from its folder, so inputs inside it are fine.)"""
    out = getattr(config, "out", None)
    if out is None:
        return
    from transferlab._paths import check_output_dir

    check_output_dir(str(out), "--out")


def run(args: argparse.Namespace) -> int:
    from transferlab.cli import print_json
    from transferlab.studies import get_study

    study = get_study(args.study)
    config = study.config(**{f.name: getattr(args, f.name)
                             for f in dataclasses.fields(study.config)})
    _check_plan_size(config)
    _check_out(config)
    with _workers_per_gpu(getattr(args, "workers_per_gpu", None)):
        result = study.run(config, progress=not args.quiet)
    lines, summary = study.summarize(result)
    # Some trials failed (all failing raised TrialsFailed, exit 3): the count and causes
    # come first, before any finding drawn from the trials that finished.
    failures = result.get("trial_failures") if isinstance(result, dict) else None
    if args.json:
        print_json({"trial_failures": failures, **summary} if failures else summary)
    else:
        print("\n".join(([failures] if failures else []) + list(lines)))
    return 0
