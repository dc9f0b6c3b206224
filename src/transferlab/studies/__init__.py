"""Studies: sweeps plus curves, figures and an HTML report, one folder per study.

``transferlab.studies.yosinski.run(...)`` reproduces Yosinski et al. (2014); see
docs/yosinski.md. Shared parts live in ``transferlab.studies.kit``: ``stats`` (intervals,
paired tests, Holm), ``report`` (the HTML kit) and ``registry`` (``transferlab study NAME``).
"""

from transferlab.studies.kit.registry import Study, all_studies, get_study, register_study

__all__ = ["Study", "all_studies", "get_study", "register_study"]
