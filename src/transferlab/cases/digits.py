"""Offline digits cases (sklearn's ``load_digits``, 8 x 8): CPU-sized, for the quick
scoreboard and the tests.

Source: a 3-block MLP pretrained on digits 0-4 (or 5-9). Targets: the other half at k in
{5, 10, 30} labelled examples per class. The dev / held-out split was fixed here, before
any result was seen, by one rule: k = 10 cases are dev, every other k is held out (so a rule
tuned on dev is scored on sizes it was not tuned on), in both directions.
"""

from __future__ import annotations

from transferlab.cases.core import CaseConfig
from transferlab.cases.registry import register_cases

ARCH_KWARGS = (("width", 32), ("depth", 3))
PAIRS = (("04", "0-4", "5-9"), ("59", "5-9", "0-4"))
SIZES = (5, 10, 30)


def cases() -> list[CaseConfig]:
    out = []
    for tag, src, tgt in PAIRS:
        for k in SIZES:
            out.append(CaseConfig(
                name=f"digits{tag}-k{k}", source_task=f"digits:classes={src}",
                target=f"digits:classes={tgt}", k=k, split="dev" if k == 10 else "heldout",
                arch="mlp", arch_kwargs=ARCH_KWARGS, pretrain_epochs=20))
    return out


register_cases("digits", cases, "digits 0-4 <-> 5-9, MLP source, k = 5, 10, 30 "
                                 "(dev: k = 10; held out: the rest)")
