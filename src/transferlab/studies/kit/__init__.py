"""Parts every study shares: ``stats`` and ``registry`` (the HTML kit is ``transferlab.report.html``)."""
