"""``independent``: fine-tune every member fully (the baseline deep-ensemble transfer)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.ensemble.engine import Context, StrategyRun, run_stage
from transferlab.ensemble.registry import StrategyConfig, register_strategy
from transferlab.errors import bad_value


def check_epochs(name: str, value, allow_none: bool = True, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise bad_value(name, value, f"an integer >= {minimum}" + (" or None" if allow_none
                                                                   else ""))


@dataclass
class IndependentConfig(StrategyConfig):
    epochs: int | None = field(default=None, metadata={
        "help": "fine-tuning epochs per member (None: the ensemble's --epochs)"})

    def __post_init__(self) -> None:
        check_epochs("epochs", self.epochs)

    def run(self, ctx: Context) -> StrategyRun:
        epochs = self.epochs or ctx.train["epochs"]
        return StrategyRun(run_stage(ctx, "finetune", ctx.members, "finetune", epochs))


register_strategy("independent", IndependentConfig,
                  "fine-tune every member fully ('finetune' protocol, fresh head each)")
