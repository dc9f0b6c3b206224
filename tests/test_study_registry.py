"""The study registry and `transferlab study`: listing, per-study flags, unknown names."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys

import pytest

from transferlab.cli import main
from transferlab.errors import UserError
from transferlab.studies import Study, all_studies, get_study, register_study
from transferlab.studies.kit import registry
from transferlab.studies.yosinski import YosinskiConfig


def test_yosinski_is_registered_with_its_config():
    s = get_study("yosinski")
    assert s.config is YosinskiConfig and callable(s.run) and callable(s.summarize)
    assert "yosinski" in all_studies() and s.summary and "\n" not in s.summary


def test_listing_studies_does_not_import_the_heavy_study_code():
    # Every `transferlab` start lists the studies; the study's code (pandas, scipy,
    # matplotlib) loads only to run one.
    code = ("import sys; from transferlab.cli import build_parser; build_parser(); "
            "print([m for m in sys.modules if m.startswith('transferlab.studies.')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    loaded = ast.literal_eval(out)
    assert "transferlab.studies.yosinski" in loaded
    assert "transferlab.studies.yosinski.study" not in loaded
    assert "transferlab.studies.kit.stats" not in loaded


def test_unknown_study_names_the_registered_ones():
    with pytest.raises(UserError, match=r"study='nope' is invalid: allowed is yosinski"):
        get_study("nope")


def test_study_help_lists_the_registered_studies(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "yosinski" in out and get_study("yosinski").summary.split(":")[0] in out


def test_yosinski_help_shows_one_flag_per_config_field(capsys):
    with pytest.raises(SystemExit):
        main(["study", "yosinski", "--help"])
    out = capsys.readouterr().out
    for f in dataclasses.fields(YosinskiConfig):
        assert "--" + f.name.replace("_", "-") in out
    assert "--split-seeds" in out and "--quiet" in out


def test_unknown_study_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "transferlab", "study", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["transferlab study: error: study='nope' is invalid: allowed is yosinski, "
                     "ensembles, fewshot, defrost, guide, text; run `transferlab study --help` "
                     "for what each does"]


def test_flags_parse_into_the_config(monkeypatch):
    seen = {}

    def fake_run(cfg, progress=True):
        seen.update(cfg=cfg, progress=progress)
        return {}

    study = dataclasses.replace(get_study("yosinski"), run=fake_run,
                                summarize=lambda result: (["ok"], {}))
    monkeypatch.setitem(registry._STUDIES, "yosinski", study)
    assert main(["study", "yosinski", "--split-seeds", "2,5", "--depths", "1,3", "--seeds",
                 "4", "--quiet"]) == 0
    cfg = seen["cfg"]
    assert cfg.split_seeds == [2, 5] and cfg.depths == [1, 3] and cfg.seeds == 4
    assert cfg.dataset == "digits" and cfg.backend == "local" and seen["progress"] is False


def test_bad_choice_is_a_user_error():
    with pytest.raises(UserError, match=r"--backend='slurm' is invalid: allowed is local or ray"):
        YosinskiConfig(backend="slurm")


def test_a_config_field_without_help_is_refused():
    @dataclasses.dataclass
    class NoHelp:
        x: int = 1

    with pytest.raises(UserError, match=r"config fields \['x'\] have no metadata\['help'\]"):
        register_study(Study("nohelp", "s", "d", NoHelp, lambda c, progress=True: {},
                             lambda r: ([], {})))
    assert "nohelp" not in all_studies()
