"""``head-only``: every member's encoder frozen, a new head trained per member."""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.ensemble.engine import Context, StrategyRun, run_stage
from transferlab.ensemble.independent import check_epochs
from transferlab.ensemble.registry import StrategyConfig, register_strategy


@dataclass
class HeadOnlyConfig(StrategyConfig):
    epochs: int | None = field(default=None, metadata={
        "help": "head-training epochs per member on cached features (None: --epochs)"})

    def __post_init__(self) -> None:
        check_epochs("epochs", self.epochs)

    def run(self, ctx: Context) -> StrategyRun:
        epochs = self.epochs or ctx.train["epochs"]
        return StrategyRun(run_stage(ctx, "head-only", ctx.members, "head-only", epochs))


register_strategy("head-only", HeadOnlyConfig,
                  "every member's encoder frozen; only a new head trains ('head-only')")
