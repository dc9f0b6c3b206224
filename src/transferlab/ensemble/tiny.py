"""``tiny``: the tiny fine-tune of ``shift`` without the shift (the ablation: same compute
per non-reference member, from the unshifted source with a fresh head)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transferlab.ensemble.engine import Context, StrategyRun, run_stage
from transferlab.ensemble.independent import check_epochs
from transferlab.ensemble.registry import StrategyConfig, register_strategy
from transferlab.errors import bad_value

SCOPES = {"all": "finetune", "norm": "norm-only", "head": "head-only"}


def check_scope(value: str) -> None:
    if value not in SCOPES:
        raise bad_value("scope", value, " or ".join(SCOPES),
                        "all: every parameter; norm: normalisation affine + head; head")


@dataclass
class TinyConfig(StrategyConfig):
    epochs: int = field(default=1, metadata={"help": "tiny fine-tune epochs per member"})
    scope: str = field(default="all", metadata={
        "help": "what trains: all, norm (normalisation affine + head) or head"})

    def __post_init__(self) -> None:
        check_epochs("epochs", self.epochs, allow_none=False)
        check_scope(self.scope)

    def run(self, ctx: Context) -> StrategyRun:
        return StrategyRun(run_stage(ctx, "tiny", ctx.members, SCOPES[self.scope],
                                     self.epochs))


register_strategy("tiny", TinyConfig,
                  "a tiny fine-tune of every member from its source, no shift (ablation)")
