"""Findings sentences, computed from the measured cells (never written in advance).

Every comparison is paired over the units (seed, episode) both cells measured: the same
support set and training seed (``kit.stats.paired_family``: paired t-test, Wilcoxon p
beside it), Holm-corrected over the finding's family. A difference counts when its
corrected p < ``ALPHA``. With one unit no test is possible and the sentence says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from transferlab.studies.fewshot.cells import by_unit, cell
from transferlab.studies.fewshot.weightchange import moved_summary
from transferlab.studies.kit.stats import ALPHA, fmt_p, signed_pp

RULE = (f"Each comparison is a two-sided paired t-test over the (seed, episode) units both "
        f"cells share (same support set), Holm-corrected within the finding; a difference "
        f"counts when the corrected p < {ALPHA}.")
BN_VS_CONV = (("bn-only", "conv-only"), ("bn-only-frozen-stats", "conv-only-frozen-stats"))
STATS_PAIRS = (("bn-only-frozen-stats", "bn-only"), ("conv-only-frozen-stats", "conv-only"),
               ("finetune-frozen-stats", "finetune"))


@dataclass
class Finding:
    key: str
    title: str
    text: str
    tests: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _family(groups):
    from transferlab.studies.kit.stats import paired_family

    return paired_family(groups, label="label")


def rises_with_k(cells, protocols, shots) -> Finding:
    lo, hi = shots[0], shots[-1]
    groups = [((p, hi, lo), by_unit(cells, p, hi), by_unit(cells, p, lo)) for p in protocols]
    rows = _family(groups)
    rows = [{"comparison": f"{p}: k={a} − k={b}", **{k: v for k, v in r.items() if k != "label"}}
            for r in rows for (p, a, b) in [r["label"]]]
    up = [r for r in rows if r["higher"]]
    down = [r for r in rows if r["lower"]]
    flat = [r for r in rows if not r["higher"] and not r["lower"]]
    if not rows:
        text = f"Only one k was run (k = {lo}); no trend to test."
    else:
        text = (f"From k = {lo} to k = {hi}, accuracy rose significantly for {len(up)} of "
                f"{len(rows)} protocols")
        if flat:
            text += "; not significantly for " + ", ".join(
                f"{r['comparison'].split(':')[0]} ({signed_pp(r['mean_diff'])}, "
                f"{fmt_p(r['p_holm'])})" for r in flat)
        if down:
            text += "; it fell for " + ", ".join(
                f"{r['comparison'].split(':')[0]} ({signed_pp(r['mean_diff'])})" for r in down)
        text += "."
        if flat or down:
            text += (" Where it does not rise significantly, look at the cells' spread: few "
                     "episodes give wide CIs, and a fixed budget (the last of a fixed number "
                     "of steps; the probe's strongest L2) can overfit or underfit some k.")
    return Finding("rises_with_k", f"Accuracy rises from {lo} to {hi} shots", text, rows)


def _pair_rows(cells, protocols, shots, candidates) -> tuple[list[tuple[str, str]], list[dict]]:
    """The candidate (a, b) pairs both run, and one Holm family of paired tests of a - b over
    shared episodes, a row per (pair, k) with its ``comparison`` and ``shots``."""
    pairs = [(a, b) for a, b in candidates if a in protocols and b in protocols]
    groups = [((a, b, k), by_unit(cells, a, k), by_unit(cells, b, k))
              for a, b in pairs for k in shots]
    rows = [{"comparison": f"{a} − {b}", "shots": k,
             **{x: v for x, v in r.items() if x != "label"}}
            for r in _family(groups) for (a, b, k) in [r["label"]]]
    return pairs, rows


def bn_vs_conv(cells, protocols, shots) -> Finding:
    pairs, rows = _pair_rows(cells, protocols, shots, BN_VS_CONV)
    if not rows:
        return Finding("bn_vs_conv", "BatchNorm tuning vs convolution tuning",
                       "Not measured: run bn-only and conv-only (or their -frozen-stats "
                       "variants) to compare them.")
    parts = []
    for a, b in pairs:
        mine = [r for r in rows if r["comparison"] == f"{a} − {b}"]
        bn_won = [r["shots"] for r in mine if r["higher"]]
        conv_won = [r["shots"] for r in mine if r["lower"]]
        tie = [r["shots"] for r in mine if not r["higher"] and not r["lower"]]
        s = f"{a} vs {b}: "
        bits = []
        if bn_won:
            bits.append("BN tuning better at k = " + ", ".join(map(str, bn_won)))
        if conv_won:
            bits.append("conv tuning better at k = " + ", ".join(map(str, conv_won)))
        if tie:
            bits.append("no significant difference at k = " + ", ".join(map(str, tie)))
        detail = "; ".join(f"k={r['shots']}: {signed_pp(r['mean_diff'])} ({fmt_p(r['p_holm'])})"
                           for r in mine)
        parts.append(s + "; ".join(bits) + f" [{detail}]")
    return Finding("bn_vs_conv", "BatchNorm tuning vs convolution tuning",
                   ". ".join(parts) + ".", rows)


def frozen_stats(cells, protocols, shots) -> Finding:
    _, rows = _pair_rows(cells, protocols, shots, STATS_PAIRS)
    if not rows:
        return Finding("frozen_stats", "Frozen vs adapting BatchNorm statistics",
                       "Not measured: run a protocol with and without -frozen-stats.")
    better = [f"{r['comparison'].split(' − ')[1]} at k={r['shots']}" for r in rows if r["higher"]]
    worse = [f"{r['comparison'].split(' − ')[1]} at k={r['shots']}" for r in rows if r["lower"]]
    text = (f"Freezing the statistics helped significantly in {len(better)} of {len(rows)} "
            f"comparisons" + (f" ({', '.join(better)})" if better else "") +
            f" and hurt in {len(worse)}" + (f" ({', '.join(worse)})" if worse else "") + ".")
    return Finding("frozen_stats", "Frozen vs adapting BatchNorm statistics", text, rows)


def best_per_k(cells, protocols, shots, pairwise_rows) -> Finding:
    """Per k, the protocols that no other protocol beats significantly (Holm over every pair
    at k), in the config's order; one is named "best" only if it beats every other
    significantly. No argmax over test means: the study trains on all k (no validation
    split), so nothing here is chosen on test accuracy, it is only tested on it."""
    parts, tests = [], []
    for k in shots:
        measured = [p for p in protocols if (c := cell(cells, p, k)) and c["mean"] is not None]
        if not measured:
            continue
        rows = [r for r in pairwise_rows if r["shots"] == k
                and r["a"] in measured and r["b"] in measured]
        tests.extend(rows)
        beaten = {r["b"] for r in rows if r["higher"]} | {r["a"] for r in rows if r["lower"]}
        beats = {p: {r["b"] for r in rows if r["a"] == p and r["higher"]}
                 | {r["a"] for r in rows if r["b"] == p and r["lower"]} for p in measured}
        top = [p for p in measured if p not in beaten]
        sole = [p for p in top if len(beats[p]) == len(measured) - 1]
        if len(measured) > 1 and sole:
            p = sole[0]
            s = (f"k = {k}: {p} ({pct(cell(cells, p, k)['mean'])}), significantly better "
                 "than every other protocol")
        elif len(measured) == 1:
            s = f"k = {k}: only {measured[0]} measured"
        else:
            s = f"k = {k}: no protocol is significantly below " + ", ".join(
                f"{p} ({pct(cell(cells, p, k)['mean'])})" for p in top) + \
                " (none significantly better than all others)"
        parts.append(s)
    return Finding("best", "Protocols not significantly beaten, per k", "; ".join(parts) + ".",
                   tests)


def weights_finding(rows, protocols, shots) -> Finding:
    """Which kinds each protocol moved (largest k), from the relative changes."""
    if not rows:
        return Finding("weights", "What each protocol changed",
                       "Not measured (run with weights kept).")
    k = max(r["shots"] for r in rows)
    parts = []
    for p in protocols:
        summ = moved_summary(rows, p, k)
        if not summ:
            continue
        moved = sorted(((kind, v) for kind, v in summ.items() if v["moved"]),
                       key=lambda kv: -kv[1]["relative_change"])
        still = [kind for kind, v in summ.items() if not v["moved"]]
        body = ", ".join(f"{kind} (up to {v['relative_change']:.3g} in {v['block']}"
                         + (f", cos ΔW between episodes {v['cosine']:.2f})"
                            if v["cosine"] is not None else ")")
                         for kind, v in moved) or "nothing"
        s = f"{p} moved {body}"
        if still:
            s += "; left unchanged: " + ", ".join(still)
        parts.append(s)
    return Finding("weights", f"What each protocol changed (k = {k}, relative change "
                   "||ΔW||/||W0||; the head against its own initialisation)",
                   ". ".join(parts) + ".")


def findings(cells, protocols, shots, pairwise_rows, weight_rows) -> list[Finding]:
    return [rises_with_k(cells, protocols, shots), bn_vs_conv(cells, protocols, shots),
            frozen_stats(cells, protocols, shots),
            best_per_k(cells, protocols, shots, pairwise_rows),
            weights_finding(weight_rows, protocols, shots)]
