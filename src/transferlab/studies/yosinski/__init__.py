"""Reproduce Yosinski et al. (2014), "How transferable are features in deep neural networks?"

>>> from transferlab.studies import yosinski
>>> curves = yosinski.run("digits", budget="quick", seeds=2, out="runs/demo")  # doctest: +SKIP
>>> curves["conditions"]["AnB"]["mean"]                                        # doctest: +SKIP

The folder is the shape every study copies:

* ``config.py``: the settings dataclass (one CLI flag per field, with its help);
* ``conditions.py`` / ``budgets.py``: the design (tasks, sweep specs, training budgets);
* ``curves.py``: results table -> per-condition, per-depth statistics;
* ``findings.py``: the paper's claims decided by paired tests (``kit.stats``);
* ``plot.py`` and ``report.py``: figures and the HTML report (``report.html``);
* ``study.py``: ``run(...)`` end to end; this file registers the study by name.
"""

from transferlab.studies.kit.registry import Study, register_study
from transferlab.studies.yosinski.config import YosinskiConfig

__all__ = ["run", "run_config", "summarize", "YosinskiConfig", "DB_NAME", "default_out",
           "load_curves", "STUDY"]

# study.py imports pandas, scipy and matplotlib; registering the study (which every
# `transferlab` start does, to list it) must not, so its names load on first use.
_LAZY = {"run", "run_config", "summarize", "DB_NAME", "default_out", "load_curves"}


def __getattr__(name: str):
    if name in _LAZY:
        from transferlab.studies.yosinski import study
        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run(cfg: YosinskiConfig, progress: bool = True) -> dict:
    from transferlab.studies.yosinski.study import run_config
    return run_config(cfg, progress=progress)


def _summarize(result: dict) -> tuple[list[str], dict]:
    from transferlab.studies.yosinski.study import summarize
    return summarize(result)


STUDY = register_study(Study(
    name="yosinski",
    summary="How transferable are features? (Yosinski et al. 2014): AnB/BnB/+ vs depth",
    description="Reproduce Yosinski et al. (2014): halves A and B of the classes (random "
                "halves are repeated over several split seeds), base networks per seed, then "
                "BnB, BnB+, AnB, AnB+ and random features for every depth n, with findings "
                "decided by paired tests (Holm-corrected), a figure, curves.json and "
                "report.html in --out. Reruns resume.",
    config=YosinskiConfig, run=_run, summarize=_summarize))
