"""Incremental defrosting (Gerace et al. 2023): which depth to freeze, against target size
and source-target correlation, and what the representations say about it.

Shaped like ``studies/yosinski``: ``config.py`` (flags), ``budgets.py`` and ``design.py``
(tasks, sweep specs), ``curves.py`` (cells, n*), ``findings.py`` (the paper's four claims by
paired tests), ``reps.py`` (block-by-block similarity), ``plot.py``, ``report.py``, ``study.py``.
"""

from transferlab.studies.defrost.config import DefrostConfig
from transferlab.studies.kit.registry import Study, register_study

__all__ = ["run", "run_config", "summarize", "DefrostConfig", "DB_NAME", "STUDY"]

_LAZY = {"run", "run_config", "summarize", "DB_NAME"}


def __getattr__(name: str):
    if name in _LAZY:
        from transferlab.studies.defrost import study
        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run(cfg: DefrostConfig, progress: bool = True) -> dict:
    from transferlab.studies.defrost.study import run_config
    return run_config(cfg, progress=progress)


def _summarize(result: dict) -> tuple[list[str], dict]:
    from transferlab.studies.defrost.study import summarize
    return summarize(result)


STUDY = register_study(Study(
    name="defrost",
    summary="Incremental defrosting (Gerace et al. 2023): optimal freeze depth vs N and "
            "correlation",
    description="For every target size N and source-target correlation, freeze:n for n = "
                "0..L (and scratch) from a source pretrained once per seed; n* heatmap, "
                "accuracy-vs-depth curves, gains of n* over full freezing and scratch, "
                "block-by-block similarity of source and target nets, the four findings by "
                "paired tests; defrost.json, PNGs and report.html in --out. --synthetic uses "
                "the correlated hidden-manifold source; --source-task/--target-task an image "
                "pair. Reruns resume.",
    config=DefrostConfig, run=_run, summarize=_summarize))
