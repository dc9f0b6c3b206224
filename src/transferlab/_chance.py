"""A decision whose every candidate diverged or sits at chance is not a decision.

``advise``, ``depth`` and ``rank --verify`` pick a winner among candidates by an accuracy;
when none of them is distinguishable from guessing (or every one diverged), the "winner" is
noise, so the command refuses with the candidates' numbers instead of answering.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from transferlab.errors import UserError


def chance_band(num_classes: int, n: int) -> float:
    """Accuracy up to which a result is indistinguishable from guessing: 1/C plus two
    binomial standard errors of a guesser on ``n`` examples."""
    p = 1.0 / max(num_classes, 1)
    return p + 2.0 * math.sqrt(p * (1 - p) / max(n, 1))


def check_decision(command: str, accs: Mapping[str, float | None], num_classes: int, n: int,
                   measure: str, fix: str) -> None:
    """``UserError`` when every candidate's accuracy is missing, non-finite (diverged) or
    within the chance band; names every candidate and the fix."""
    if not accs:
        return
    band = chance_band(num_classes, n)
    ok = [a for a in accs.values() if a is not None and math.isfinite(a) and a > band]
    if ok:
        return
    shown = ", ".join(
        f"{k} {'diverged' if a is None or not math.isfinite(a) or a < 0 else f'{a:.3f}'}"
        for k, a in accs.items())
    raise UserError(f"{command}: every candidate diverged or sits at chance ({measure}: "
                    f"{shown}; chance is {1 / num_classes:.3f}, up to {band:.3f} on {n} "
                    f"examples): allowed is a decision with at least one candidate above "
                    f"chance, so none is reported; {fix}")
