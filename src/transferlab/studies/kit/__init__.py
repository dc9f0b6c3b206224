"""Parts every study shares: ``stats``, ``report`` (HTML kit) and ``registry``."""
