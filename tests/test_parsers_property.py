"""Property-based: random task strings, protocol names and numeric flags never give a
traceback — always a valid result or a clear UserError (issue: trust under bad input)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transferlab.cli import build_parser
from transferlab.cli._common import train_config_from_args
from transferlab.data.spec import TaskSpec
from transferlab.errors import UserError
from transferlab.protocols import get_protocol
from transferlab.train import TrainConfig

KEYS = ["classes", "half", "split", "split_seed", "per_class", "fraction", "val_fraction",
        "val_per_class", "size", "channels", "seed", "episode", "bogus", ""]
VALUES = st.one_of(st.integers(-10**30, 10**30).map(str), st.floats().map(str),
                   st.sampled_from(["A", "B", "random", "dissimilar", "0-4", "4-0", "cat,dog",
                                    "", "nan", "inf", "-0", "1e400", "0x10", " 3 "]),
                   st.text(max_size=6))
TASKS = st.one_of(
    st.text(max_size=40),
    st.builds(lambda ds, kv: ds + "".join(f":{k}={v}" for k, v in kv),
              st.sampled_from(["digits", "mnist", "cifar10", "kmnist", "x", ""]),
              st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4)))
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(TASKS)
def test_task_strings_parse_or_say_why(text):
    try:
        spec = TaskSpec.parse(text)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert TaskSpec.parse(str(spec)) == spec  # canonical form round-trips


@FAST
@given(st.one_of(st.text(max_size=20),
                 st.builds(lambda f, a: f"{f}:{a}", st.sampled_from(
                     ["freeze", "reinit", "reinit+", "finetune", "linear-probe", "bn-only",
                      "x"]), st.one_of(st.integers(-5, 10**20).map(str), st.text(max_size=5)))))
def test_protocol_names_resolve_or_say_why(name):
    try:
        proto = get_protocol(name)
    except UserError as exc:
        assert str(exc)
        return
    assert get_protocol(proto.name).name == proto.name


NUM = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20))


FLOAT_FIELDS = ("lr", "weight_decay", "momentum", "lr_mult", "layer_decay", "l2",
                "max_grad_norm")


@FAST
@given(st.sampled_from(FLOAT_FIELDS), NUM, st.dictionaries(
    st.sampled_from(FLOAT_FIELDS), NUM, max_size=2))
def test_train_numbers_are_valid_or_refused(name, value, others):
    """One field at a time (others random too): accepted values are always finite."""
    try:
        cfg = TrainConfig(**{**others, name: value})
    except UserError:
        return
    for field in FLOAT_FIELDS:
        v = getattr(cfg, field)
        assert v is None or math.isfinite(v), f"{field}={v} was accepted"


@FAST
@given(st.lists(st.tuples(st.sampled_from(["--lr", "--epochs", "--momentum", "--seed",
                                           "--batch-size", "--l2", "--max-grad-norm"]),
                          st.one_of(NUM.map(str), st.text(max_size=5))), max_size=3))
def test_cli_numeric_flags_never_trace_back(flags):
    argv = ["pretrain", "--out", "unused"] + [x for pair in flags for x in pair]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse refused a value: its one-line error, exit 2
        assert exc.code == 2
        return
    try:
        train_config_from_args(args)
    except UserError:
        pass


def test_the_strategies_reach_valid_results():
    """The properties above are not vacuous: valid inputs exist in each space."""
    assert str(TaskSpec.parse("digits:classes=0-4:size=8")) == "digits:classes=0-4:size=8"
    assert get_protocol("freeze:3").name == "freeze:3"
    with pytest.raises(UserError):
        TaskSpec.parse("digits:size=abc")
