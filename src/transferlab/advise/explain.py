"""The plain-language explanation: the guide's scenario, quoted, and the measured numbers
that placed the case there."""

from __future__ import annotations

from transferlab.advise.evidence import Evidence
from transferlab.advise.rules import GUIDE, GUIDE_TABLE, SMALLER_LR, Candidate, Thresholds


def explain(ev: Evidence, size: str, similarity: str, rec: Candidate, runner: Candidate | None,
            th: Thresholds, rests_on: list[dict] | None = None) -> str:
    """A paragraph: scenario, why (numbers and thresholds), the advice, the runner-up."""
    top, best = ev.depth(ev.top_depth), ev.depth(ev.best_depth)
    cmp_k = ">=" if size == "large" else "<"
    cmp_r = ">=" if similarity == "similar" else "<"
    parts = [
        f"Scenario: {size} and {similarity}. The guide: \"{GUIDE[(size, similarity)]}\"",
        f"Size: {ev.examples_per_class} labelled examples per class (smallest class; "
        f"{ev.n_train} train + {ev.n_val} validation in all) {cmp_k} {th.size_k}, the "
        f"advisor's line for \"large\".",
        f"Similarity: a linear probe on the top features ({top.block}, depth {top.depth}) "
        f"reaches {top.probe_val_acc:.3f} validation accuracy; the best depth is "
        f"{best.block} (depth {best.depth}) with {best.probe_val_acc:.3f} (chance "
        f"{ev.chance:.3f}); the top keeps {ev.retained:.1%} of the best probe's gain over "
        f"chance, {cmp_r} {th.retained_min:.1%}, the line for \"similar\". LogME by depth: "
        + ", ".join(f"{e.block} {e.logme:.3f}" for e in ev.per_depth) + "."
        + (f" LEEP of the source head: {ev.leep:.3f}." if ev.leep is not None else ""),
        f"Advice: {_setting(rec)}." + (f" Runner-up: {_setting(runner)}." if runner else ""),
    ]
    cell = f"{size}_{similarity}"
    if rests_on:
        parts.insert(-1, "The advice rests on the measured development case(s) nearest in "
                     "this evidence (docs/advise.md): " + "; ".join(
                         f"{r['case']} (distance {r['distance']:.2f}, where it was "
                         f"{r['regret']:.3f} below the best on validation)" for r in rests_on)
                     + ".")
    elif th.family(size, similarity) != GUIDE_TABLE[cell]:
        parts.insert(-1, f"Where the guide would pick {GUIDE_TABLE[cell]}, the advisor's "
                     f"table (fitted on measured cases: docs/advise.md) picks "
                     f"{th.family(size, similarity)} for a {size}, {similarity} case.")
    if rec.protocol == "finetune" and rec.lr_mult is not None and rec.lr_mult < 1:
        parts.append(f"The smaller learning rate (lr_mult {rec.lr_mult:g}): \"{SMALLER_LR}\"")
    if ev.n_evidence_train < ev.n_train:
        parts.append(f"(Evidence from {ev.n_evidence_train} train / {ev.n_evidence_val} "
                     "validation examples, a stratified subset.)")
    return " ".join(parts)


def _setting(c: Candidate) -> str:
    if c.solver:
        what = "linear classifier (L-BFGS, L2 picked on validation) on the frozen " + \
            ("top features" if c.protocol == "linear-probe"
             else f"features of block {c.protocol.split(':')[1]}")
        return f"{c.protocol} ({what})"
    return (f"{c.label}: lr {c.lr:g} for the head and new blocks, lr_mult {c.lr_mult:g} for "
            f"the pretrained ones, {c.epochs} epochs")
