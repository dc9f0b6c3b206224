"""Failed trials are reported by their cause (count + first error of each kind), exit 3 when
all failed, and first in a study's output when some did; never as a missing-column symptom.

The crash found on a GPU (a CPU generator drawing on a CUDA parameter) is reproduced on the
CPU by making the seeded-init helper raise that error: every head re-initialisation fails,
as every trial did on the H200.
"""

from __future__ import annotations

import json
import shlex

import pandas as pd
import pytest

from transferlab.cli import main
from transferlab.errors import TrialsFailed, UserError
from transferlab.sweep.failures import check_trials, summarize_failures

CUDA_ERROR = "Expected a 'cuda' device type for generator but found 'cpu'"
FAST = "--epochs 1 --batch-size 64 --device cpu --quiet"


def _frame(statuses_errors):
    return pd.DataFrame([{"status": s, "error": e} for s, e in statuses_errors])


def test_report_groups_by_kind_with_counts_and_first_message():
    df = _frame([("failed", f"RuntimeError: {CUDA_ERROR}\nTraceback ..."),
                 ("done", None),
                 ("failed", "RuntimeError: another message"),
                 ("failed", "diverged: loss is nan at epoch 2"),
                 ("failed", "source 'a' (trial seed 0) failed to pretrain, and ...")])
    rep = summarize_failures(df)
    assert (rep.failed, rep.total) == (4, 5) and not rep.all_failed
    assert [(c.kind, c.count) for c in rep.causes] == [("RuntimeError", 2), ("diverged", 1),
                                                         ("source", 1)]
    line = rep.line()
    assert line.startswith(f"4 of 5 trials failed: RuntimeError: {CUDA_ERROR} [2 trials]; ")
    assert "another message" not in line  # the first error of a kind stands for it
    assert "diverged: loss is nan at epoch 2 [1 trial]" in line and "Traceback" not in line


def test_check_trials_raises_only_when_every_trial_failed():
    assert check_trials(_frame([("done", None)]), "x") is None
    assert check_trials(pd.DataFrame(), "x") is None
    some = check_trials([_frame([("done", None)]), _frame([("failed", "ValueError: v")])], "x")
    assert some == "1 of 2 trials failed: ValueError: v [1 trial]"
    with pytest.raises(TrialsFailed, match=r"^study s: 2 of 2 trials failed: RuntimeError: "
                                           r"boom \[2 trials\]") as err:
        check_trials(_frame([("failed", "RuntimeError: boom")] * 2), "study s")
    assert err.value.exit_code == 3 and isinstance(err.value, UserError)
    # bad input found inside every trial (a UserError each): 2, as the up-front check
    with pytest.raises(TrialsFailed) as err:
        check_trials(_frame([("failed", "UserError: size=8 expected")]), "s")
    assert err.value.exit_code == 2


def test_cli_maps_trials_failed_to_exit_3(monkeypatch, capsys):
    from transferlab.cli import results as results_cli

    def boom(args):
        raise TrialsFailed("db='x': 3 of 3 trials failed: RuntimeError: r [3 trials]")

    monkeypatch.setattr(results_cli, "run", boom)
    assert main(["results", "x.sqlite"]) == 3
    assert capsys.readouterr().err.strip() == ("transferlab results: error: db='x': 3 of 3 "
                                               "trials failed: RuntimeError: r [3 trials]")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp("failing")
    assert main(shlex.split(f"pretrain --task digits:classes=0-4:size=8 --arch mlp "
                            f"--arch-kwargs '{{\"width\": 8}}' {FAST} --out {d}/src")) == 0
    return d


@pytest.fixture
def gpu_crash(monkeypatch):
    """Every seeded re-initialisation raises the H200's error."""
    from transferlab.models import init

    def crash(*args, **kwargs):
        raise RuntimeError(CUDA_ERROR)

    monkeypatch.setattr(init, "seeded_", crash)


def test_sweep_whose_every_trial_crashes_exits_3_naming_the_cause(source, gpu_crash, capsys):
    db = source / "crash.sqlite"
    rc = main(shlex.split(f"sweep --source {source}/src.safetensors --target "
                          f"digits:classes=5-9:size=8 --protocols freeze --depths 1 --seeds 2 "
                          f"--epochs 1 --workers 1 --quiet --db {db}"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1, err
    assert f"2 of 2 trials failed: RuntimeError: {CUDA_ERROR} [2 trials]" in err[0]
    rc = main(["results", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and f"2 of 2 trials failed: RuntimeError: {CUDA_ERROR}" in err[0]


def test_partial_failure_is_named_first_by_results(source, capsys):
    from transferlab.sweep import run_sweep
    from transferlab.sweep import testing

    spec = {"name": "part", "target": "digits:classes=5-9:size=8",
            "sources": {"s": {"checkpoint": f"{source}/src.safetensors"}},
            "axes": {"protocol": ["freeze:1"], "seed": [0, 1, 2]}, "train": {"epochs": 1}}
    db = source / "part.sqlite"
    testing.FAIL.update({"seed": 1, "how": "raise"})
    try:
        run_sweep(spec, db, workers=1, progress=False,
                  trial_fn="transferlab.sweep.testing:fake_trial")
    finally:
        testing.FAIL.clear()
    assert main(["results", str(db)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("1 of 3 trials failed: RuntimeError: injected failure for freeze:1 "
                      "seed 1 [1 trial]")


def test_study_whose_every_trial_crashes_exits_3_not_missing_columns(tmp_path, gpu_crash,
                                                                    capsys):
    """What the H200 showed: 'results table lacks columns ['test_acc']', exit 2. Now the
    cause: the sources cannot pretrain (every trial that needs them fails naming why)."""
    rc = main(["study", "yosinski", "--dataset", "digits", "--budget", "tiny", "--seeds", "1",
               "--split-seeds", "0", "--depths", "1", "--out", str(tmp_path / "y"),
               "--workers", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 3, err
    assert "lacks columns" not in err and "\n" not in err
    assert err.startswith("transferlab study: error: study yosinski: ")
    assert "trials failed: source '" in err and "(trial seed 0) failed to pretrain" in err
    assert CUDA_ERROR in err


def test_study_with_some_failed_trials_names_them_first(tmp_path, monkeypatch, capsys):
    """One condition's trials raise; the study finishes on the rest, and its CLI output and
    report start with the count and the cause. (The other trials are the sweep engine's
    stand-in, which derives metrics from the config: seconds, not minutes.)"""
    from transferlab.sweep import foundation, testing

    def flaky(cfg, *args, **kwargs):
        if cfg["protocol"].startswith("reinit+"):
            raise RuntimeError("injected: reinit+ trials fail")
        return testing.fake_trial(cfg)

    monkeypatch.setattr(foundation, "run_trial", flaky)
    out = tmp_path / "y"
    rc = main(["study", "yosinski", "--dataset", "digits", "--budget", "tiny", "--seeds", "1",
               "--split-seeds", "0", "--depths", "1", "--out", str(out), "--workers", "1",
               "--quiet"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert lines[0].endswith("trials failed: RuntimeError: injected: reinit+ trials fail "
                             f"[{lines[0].split()[0]} trial{'s' if lines[0][0] != '1' else ''}]")
    curves = json.loads((out / "curves.json").read_text())
    assert curves["trial_failures"] == lines[0]
    assert curves["settings"]["trials_failed"] == int(lines[0].split()[0]) > 0
    html = (out / "report.html").read_text()
    assert html.index("Failed trials") < html.index("Findings")
