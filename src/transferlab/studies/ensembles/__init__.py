"""Transfer learning for ensembles (Shashkov et al. 2022, arXiv 2206.13116).

>>> from transferlab.studies import ensembles
>>> res = ensembles.run("digits", members=5, seeds=3, out="runs/ens")   # doctest: +SKIP
>>> [(r["strategy"], r["accuracy"]) for r in res["strategies"]]        # doctest: +SKIP

Shaped like ``yosinski/``: ``config.py``, ``budgets.py`` and ``design.py`` (pairs, budgets,
strategies at full / matched compute and ablations), ``findings.py`` (the paper's four
claims by paired tests, Holm-corrected), ``plot.py``, ``report.py``, ``study.py``.
"""

from transferlab.studies.ensembles.config import EnsemblesConfig
from transferlab.studies.kit.registry import Study, register_study

_LAZY = {"run", "run_config", "summarize", "default_out", "aggregate", "DB_NAME"}


def __getattr__(name: str):
    if name in _LAZY:
        from transferlab.studies.ensembles import study
        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run(cfg: EnsemblesConfig, progress: bool = True) -> dict:
    from transferlab.studies.ensembles.study import run_config
    return run_config(cfg, progress=progress)


def _summarize(result: dict) -> tuple[list[str], dict]:
    from transferlab.studies.ensembles.study import summarize
    return summarize(result)


STUDY = register_study(Study(
    name="ensembles",
    summary="Transfer learning for ensembles (Shashkov et al. 2022): shift vector + tiny "
            "fine-tune vs fine-tuning every member",
    description="Transfer an ensemble of M pretrained convnets to a target pair by every "
                "strategy (independent, shift, shift-only, tiny, head-only; full and matched "
                "compute), over several replicates, and check the paper's four claims "
                "(competitive accuracy and uncertainty, higher disagreement, cheaper member "
                "addition) by paired tests with Holm's correction. Writes ensembles.json, "
                "plots and report.html in --out; reruns resume.",
    config=EnsemblesConfig, run=_run, summarize=_summarize))
