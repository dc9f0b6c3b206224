"""Writing results, a floor below everything that reports (``studies``, ``advise``, ``cli``).

``outputs``: output-path checks and ``json_safe`` (strict JSON); ``png``: ``png_bytes`` and
``save_png`` (matplotlib); ``html``: the self-contained HTML report kit. Submodules are
imported where used, so that ``outputs`` does not pull in matplotlib.
"""
