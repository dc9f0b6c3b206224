"""The practitioner's guide, measured: four scenarios (small/large x similar/dissimilar),
every candidate protocol, the guide's advice vs transferlab's vs the measured winner, the
"smaller learning rate" claim, and the advisor's calibration with a held-out regret table.

Shape of ``studies/yosinski``: ``config.py``, ``cases.py`` (design, budgets, sweep specs),
``study.py`` (sweeps, evidence, tables, findings), ``plot.py``, ``report.py``.
"""

from transferlab.studies.guide.config import GuideConfig
from transferlab.studies.kit.registry import Study, register_study


def _run(cfg: GuideConfig, progress: bool = True) -> dict:
    from transferlab.studies.guide.study import run_config
    return run_config(cfg, progress=progress)


def _summarize(result: dict) -> tuple[list[str], dict]:
    from transferlab.studies.guide.study import summarize
    return summarize(result)


STUDY = register_study(Study(
    name="guide",
    summary="The practitioner's guide measured: size x similarity -> protocol; advisor "
            "calibration and held-out regret",
    description="For each case (a source and a target at a size) every candidate protocol "
                "(linear-probe, probe:n, freeze:n, finetune at several lr_mult, scratch) is "
                "trained over seeds on the sweep engine (resumable); the advisor's evidence "
                "is measured; its thresholds are fitted on the four guide scenarios and "
                "evaluated on held-out cases against the guide's fixed rule and "
                "always-finetune. Writes guide.json, figures and report.html in --out.",
    config=GuideConfig, run=_run, summarize=_summarize))
