"""Budgets of the depth search: when the walk over depths stops, and the compute cap.

The cap is a fraction of what the exhaustive ``freeze:0..L`` sweep (every depth, every
seed, the full epochs) would cost, estimated from measured times (see ``depth``): deep
frozen depths train only the last blocks and are cheap, shallow ones run almost the whole
network per step, so the walk tries the cheap deep depths first and the cap cuts it
before the expensive shallow ones when defrosting has stopped paying.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.errors import bad_value


@dataclass(frozen=True)
class SearchBudget:
    """One budget preset of ``best_depth``."""

    name: str = field(metadata={"help": "preset name"})
    patience: int = field(default=1, metadata={
        "help": "the walk from deep to shallow depths stops after this many shallower depths "
                "in a row without a better validation accuracy (defrosting stopped paying)"})
    finalists: int = field(default=2, metadata={
        "help": "best depths of the walk that get every seed (the final check)"})
    margin_se: float = field(default=2.0, metadata={
        "help": "a runner-up joins the final check only if its walk val_acc is within this "
                "many binomial standard errors (sqrt(p (1 - p) / n_val), p Laplace-smoothed) "
                "of the best's; "
                "0 checks every finalist"})
    cap: float = field(default=0.25, metadata={
        "help": "compute cap as a fraction of the estimated exhaustive sweep (every depth, "
                "every seed); the walk stops, and the final check is shortened, before it; "
                "the result's notes say when"})

    def __post_init__(self) -> None:
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) \
                or self.patience < 1:
            raise bad_value("patience", self.patience, "an integer >= 1")
        if isinstance(self.finalists, bool) or not isinstance(self.finalists, int) \
                or self.finalists < 1:
            raise bad_value("finalists", self.finalists, "an integer >= 1")
        if not self.margin_se >= 0:
            raise bad_value("margin_se", self.margin_se, "a number >= 0")
        if not 0 < self.cap <= 1:
            raise bad_value("cap", self.cap, "a fraction in (0, 1]")


BUDGETS = {
    "quick": SearchBudget("quick", patience=1, finalists=2, cap=0.25),
    "standard": SearchBudget("standard", patience=2, finalists=2, cap=0.5),
    # no cap, no early stop: every depth with the first seed, then the top two with all
    "thorough": SearchBudget("thorough", patience=10**6, finalists=2, cap=1.0),
}


def get_budget(name: str | SearchBudget) -> SearchBudget:
    """The preset ``name`` (``UserError`` naming the presets if unknown)."""
    if isinstance(name, SearchBudget):
        return name
    if name not in BUDGETS:
        raise bad_value("budget", name, ", ".join(BUDGETS),
                        "quick stops within about a quarter of an exhaustive sweep's compute")
    return BUDGETS[name]
