"""Outputs are checked before any work; --json is strict JSON; titles with '$' plot."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from transferlab.cli import main, print_json
from transferlab.cli._common import check_out_checkpoint, check_out_dir, json_safe
from transferlab.errors import UserError


def test_json_output_has_no_nan_tokens(capsys):
    print_json({"test_nll": float("nan"), "x": [float("inf"), 1.5], "ok": 1})
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert out == {"test_nll": None, "x": [None, 1.5], "ok": 1}
    assert json_safe((math.nan,)) == [None]


@pytest.mark.parametrize("value, message", [
    ("runs/", r"--out='runs/' is invalid: it names a folder"),
    ("{folder}", r"it names a folder"),
    ("{file}/src", r"is a file, not a folder"),
])
def test_checkpoint_out_paths_refused(tmp_path, value, message):
    (tmp_path / "f").write_text("x")
    value = value.format(folder=tmp_path, file=tmp_path / "f")
    with pytest.raises(UserError, match=message):
        check_out_checkpoint(value)


def test_checkpoint_out_never_overwrites_the_source(tmp_path):
    src = str(tmp_path / "src")
    with pytest.raises(UserError, match="would overwrite the source checkpoint"):
        check_out_checkpoint(src + ".safetensors", protect=(src,))
    check_out_checkpoint(str(tmp_path / "new" / "dst"), protect=(src,))  # fine, creates nothing
    assert not (tmp_path / "new").exists()


def test_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is an existing file; allowed is a folder"):
        check_out_dir(str(tmp_path / "f"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(UserError, match="is not writable"):
            check_out_dir(str(ro / "x"))
    finally:
        ro.chmod(0o755)


def test_pretrain_refuses_a_folder_out_before_training(tmp_path, capsys):
    code = main(["pretrain", "--task", "digits:size=8", "--arch", "mlp", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path) + "/"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "it names a folder" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_dollar_and_backslash_titles_plot(tmp_path):
    from transferlab.analysis.plot import plot_weight_changes
    from transferlab.similarity.plot import plot_similarity

    plot_similarity(np.eye(2), ["a$b", "c\\d"], ["$x", "y"], "linear_cka",
                    tmp_path / "s.png", title="cost $5 \\ unbalanced $")
    df = pd.DataFrame({"block": ["$b1", "b\\2"], "kind": ["weight", "weight"],
                       "rel_change": [0.1, 0.2], "cosine": [0.9, 0.8]})
    plot_weight_changes(df, tmp_path / "w.png", title="a $ b")
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "w.png").stat().st_size > 0


def test_every_subcommand_imports():
    """A subcommand that fails to import must fail --help, not vanish from it."""
    out = subprocess.run([sys.executable, "-m", "transferlab", "--help"], capture_output=True,
                         text=True, check=True).stdout
    from transferlab.cli import SUBCOMMANDS
    assert all(name in out for name in SUBCOMMANDS)


def test_diverged_run_with_json_prints_valid_json_saves_nothing_and_exits_3(tmp_path, capsys):
    code = main(["pretrain", "--task", "digits:size=8", "--arch", "mlp", "--lr", "1e8",
                 "--epochs", "2", "--quiet", "--json", "--out", str(tmp_path / "m")])
    cap = capsys.readouterr()
    result = json.loads(cap.out, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    assert code == 3 and result["checkpoint"] is None
    assert result["metrics"]["outcome"] == "diverged"
    assert len(cap.err.strip().splitlines()) == 1 and "training diverged" in cap.err
    assert list(tmp_path.iterdir()) == []
