"""The strategies the study compares, each tagged with its compute class.

With M members, full epochs E and tiny epochs t, ``shift`` costs E + (M-1) t epochs:

* ``full`` compute (M E epochs): ``independent``; ``shift:tiny_epochs=E`` (the shift, then a
  full fine-tune of the shifted members);
* ``matched`` compute (the shift's budget): ``shift``; ``independent:epochs=k`` with
  k = round((E + (M-1) t) / M) epochs per member;
* ablations: ``shift-only`` (no tiny fine-tune), ``tiny`` (the tiny fine-tune without the
  shift), ``head-only`` (E epochs of the head alone, on cached features).
"""

from __future__ import annotations

from transferlab.studies.ensembles.budgets import Budget


def matched_epochs(b: Budget, m: int) -> int:
    return max(1, round((b.epochs + (m - 1) * b.tiny_epochs) / m))


def strategies(b: Budget, m: int) -> dict[str, str]:
    """Strategy string -> compute class, in the table's order."""
    k = matched_epochs(b, m)
    out = {"independent": "full", f"shift:tiny_epochs={b.epochs}": "full",
           f"shift:tiny_epochs={b.tiny_epochs}": "matched", f"independent:epochs={k}": "matched",
           "shift-only": "ablation", f"tiny:epochs={b.tiny_epochs}": "ablation",
           "head-only": "ablation"}
    if k == b.epochs:  # M = 1 or t = E: the matched baseline is the full one
        out.pop(f"independent:epochs={k}")
    return out


SHIFT = "shift:tiny_epochs={t}"       # the paper's method at its own (matched) budget
BASELINE = "independent"
