"""Reproduce Yosinski et al. (2014), "How transferable are features in deep neural networks?"

>>> from transferlab.studies import yosinski
>>> curves = yosinski.run("digits", budget="quick", seeds=2, out="runs/demo")  # doctest: +SKIP
>>> curves["conditions"]["AnB"]["mean"]                                        # doctest: +SKIP

The folder is the shape every study copies:

* ``config.py``: the settings dataclass (one CLI flag per field, with its help);
* ``conditions.py`` / ``budgets.py``: the design (tasks, sweep specs, training budgets);
* ``curves.py``: results table -> per-condition, per-depth statistics;
* ``findings.py``: the paper's claims decided by paired tests (``kit.stats``);
* ``plot.py`` and ``report.py``: figures and the HTML report (``kit.report``);
* ``study.py``: ``run(...)`` end to end; this file registers the study by name.
"""

from transferlab.studies.kit.registry import Study, register_study
from transferlab.studies.yosinski.config import YosinskiConfig
from transferlab.studies.yosinski.study import (DB_NAME, default_out, load_curves, run,
                                                run_config, summarize)

__all__ = ["run", "run_config", "summarize", "YosinskiConfig", "DB_NAME", "default_out",
           "load_curves", "STUDY"]

STUDY = register_study(Study(
    name="yosinski",
    summary="How transferable are features? (Yosinski et al. 2014): AnB/BnB/+ vs depth",
    description="Reproduce Yosinski et al. (2014): halves A and B of the classes (random "
                "halves are repeated over several split seeds), base networks per seed, then "
                "BnB, BnB+, AnB, AnB+ and random features for every depth n, with findings "
                "decided by paired tests (Holm-corrected), a figure, curves.json and "
                "report.html in --out. Reruns resume.",
    config=YosinskiConfig, run=run_config, summarize=summarize))
