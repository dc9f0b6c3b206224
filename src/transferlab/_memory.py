"""How much memory one task's tensors or one model may take before we refuse to allocate."""

from __future__ import annotations

import os


def memory_limit() -> int:
    """Half the machine's physical memory, in bytes (no limit where it cannot be read).

    Refusing past this bound turns an absurd request (``size=100000``, ``width: 10000000``)
    into a clear error instead of an allocator failure or a machine that swaps to a halt.
    """
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 1 << 62
