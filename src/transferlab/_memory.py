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


# What one planned trial holds before it runs (its cell, labels, train config, store row and
# result), generously; and the most trials a plan may hold however large the machine: at
# a second per trial (a tiny digits trial on a CPU), 100,000 trials already take 28 hours.
PLANNED_TRIAL_BYTES = 64 * 1024
MAX_TRIALS = 100_000


def trial_limit() -> int:
    """The most trials one plan may hold: the time bound, or the memory bound if smaller."""
    return max(1, min(MAX_TRIALS, memory_limit() // PLANNED_TRIAL_BYTES))


def check_count(param: str, value: int, per_unit: int = 1, what: str = "",
                fix: str = "") -> None:
    """Refuse a count (episodes, seeds, members, sizes ...) whose plan, ``value`` x
    ``per_unit`` trials (``what`` says what the product is made of), passes the trial
    limit; called before any list of that length is built."""
    from transferlab.errors import bad_value

    limit = trial_limit()
    if isinstance(value, int) and not isinstance(value, bool) and value * per_unit > limit:
        plan = f"{value * per_unit:,} trials" + (f" ({what})" if what else "")
        raise bad_value(param, value, f"a plan of at most {limit:,} trials (the memory and "
                        f"time bound of transferlab._memory); this one is {plan}",
                        fix or f"pass a smaller {param}")
