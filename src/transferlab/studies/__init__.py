"""Studies: sweeps plus curves, figures and an HTML report.

``transferlab.studies.yosinski.run(...)`` reproduces Yosinski et al. (2014); see
docs/yosinski.md.
"""
