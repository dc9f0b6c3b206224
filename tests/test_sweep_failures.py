"""A sweep in which every trial fails is not a success; results refuse what they cannot show."""

from __future__ import annotations

import shlex

import pytest

from transferlab.cli import main

FAST = "--epochs 1 --batch-size 64 --device cpu --quiet"


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweeps")
    assert main(shlex.split(f"pretrain --task digits:classes=0-4:size=8 --arch mlp "
                            f"--arch-kwargs '{{\"width\": 8}}' {FAST} --out {d}/src")) == 0
    return d


def _run(argv: str, capsys) -> tuple[int, list[str], str]:
    rc = main(shlex.split(argv))
    cap = capsys.readouterr()
    return rc, cap.err.strip().splitlines(), cap.out


def test_every_trial_failing_exits_2_and_results_say_so(dbs, capsys):
    # a 16 px target for an 8 px source: every trial fails its shape check, a UserError
    # (bad input found inside the trials): exit 2 as for an up-front check, not 3
    rc, err, _ = _run(f"sweep --source {dbs}/src.safetensors --target digits:classes=5-9:size=16 "
                      f"--protocols freeze --depths 1 --seeds 2 --epochs 1 --workers 1 --quiet "
                      f"--db {dbs}/bad.sqlite", capsys)
    assert rc == 2 and len(err) == 1, err
    assert "2 of 2 trials failed: UserError: " in err[0] and "size=8" in err[0]
    rc, err, _ = _run(f"results {dbs}/bad.sqlite", capsys)
    assert rc == 2 and len(err) == 1 and "2 of 2 trials failed" in err[0], err
    rc, _, out = _run(f"results {dbs}/bad.sqlite --failed", capsys)
    assert rc == 0 and "2 failed trials" in out


def test_results_metric_must_be_numeric(dbs, capsys):
    rc, err, _ = _run(f"sweep --source {dbs}/src.safetensors --target digits:classes=5-9:size=8 "
                      f"--protocols freeze --depths 1 --seeds 1 --epochs 1 --workers 1 --quiet "
                      f"--db {dbs}/good.sqlite", capsys)
    assert rc == 0, err
    rc, err, _ = _run(f"results {dbs}/good.sqlite --metric protocol", capsys)
    assert rc == 2 and len(err) == 1, err
    assert "--metric='protocol' is invalid: it is not a numeric column" in err[0]
    assert "test_acc" in err[0]
    assert _run(f"results {dbs}/good.sqlite --metric test_nll", capsys)[0] == 0
