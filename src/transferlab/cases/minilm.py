"""MiniLM cases: all-MiniLM-L6-v2 (sentence-transformers) on BANKING77's 77 intents at
k = 5, 20 and 100 labelled queries per class.

``standard`` tier only: fine-tuning a 22M-parameter encoder on 385 to 7,700 queries per
candidate and seed is GPU work (on the 2-core CPU one candidate at k = 20 takes minutes).
Split: ``hashed_split`` of the case name, fixed before any result was seen.
"""

from __future__ import annotations

from transferlab.cases.core import CaseConfig, hashed_split
from transferlab.cases.registry import register_cases

SIZES = (5, 20, 100)
MAX_LENGTH = 64  # BANKING77 queries are short; the text study's own cap


def cases() -> list[CaseConfig]:
    out = []
    for k in SIZES:
        name = f"minilm-banking77-k{k}"
        out.append(CaseConfig(name=name, source_task=None, pretrained="minilm",
                              target=f"banking77:max_length={MAX_LENGTH}", k=k,
                              split=hashed_split(name), arch="minilm", tier="standard",
                              family="minilm-banking77"))
    return out


register_cases("minilm", cases, "all-MiniLM-L6-v2 -> BANKING77 intents at k = 5, 20, 100 "
                                "(standard tier: for a GPU)")
