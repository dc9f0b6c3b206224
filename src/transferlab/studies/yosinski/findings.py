"""Findings sentences, generated from the measured curves (never written in advance).

Each of the paper's claims compares two curves depth by depth. The conditions share their
units — a (split seed, seed) pair fixes the halves A/B and the base networks — so every
comparison is a two-sided **paired t-test** across the shared units at each depth
(``scipy.stats.ttest_rel``; the Wilcoxon signed-rank p is reported beside it), and the
p-values of one claim's family (its depths) are **Holm-corrected**. A difference counts
when its corrected p < ``ALPHA`` and its sign is the claim's. With one unit per point no
test is possible: the finding says so (``reproduced`` None) instead of deciding. Where a
claim does not hold in the numbers, the sentence says it does not reproduce. The
dissimilar-vs-random comparison shares no units (two studies, other classes): it uses
Welch's t-test on the per-unit relative drops, Holm-corrected over depths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from transferlab.studies.kit.stats import (ALPHA, decide, fmt_p, pair_up, paired_family,
                                          signed_pp, welch_test)
from transferlab.studies.yosinski.curves import REFERENCE, unit_values


@dataclass
class Finding:
    """One claim of the paper tested on the curves.

    ``reproduced`` is True / False, or None when it could not be measured or tested.
    ``tests``: one dict per depth (see ``paired_rows``) for the comparison the claim rests on.
    """

    key: str
    title: str
    reproduced: bool | None
    text: str
    depths: list[int] = field(default_factory=list)  # where the effect was measured
    comparison: str = ""                              # "BnB − AnB": what the tests measure
    tests: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def pp(x: float) -> str:
    """An accuracy difference in percentage points."""
    return f"{100 * x:.1f} pp"


def fmt_depths(depths: list[int]) -> str:
    """[1, 2, 3, 5] -> "1–3, 5"."""
    parts, run = [], []
    for d in sorted(depths):
        if run and d == run[-1] + 1:
            run.append(d)
            continue
        if run:
            parts.append(f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
        run = [d]
    if run:
        parts.append(f"{run[0]}–{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
    return ", ".join(parts)


def _blocks(curves: dict, n: int) -> str:
    """"n = 5 (conv1–conv5 copied)" when block names are known."""
    names = curves.get("block_names") or []
    if 1 <= n <= len(names):
        span = names[0] if n == 1 else f"{names[0]}–{names[n - 1]}"
        return f"n = {n} ({span} copied)"
    return f"n = {n}"


def paired_rows(curves: dict, hi: str, lo: str) -> list[dict]:
    """Paired tests of ``hi`` − ``lo`` at every depth where both share units, Holm-corrected
    over those depths (``kit.stats.paired_family``).

    ``hi`` / ``lo`` are condition names or ``REFERENCE`` (the same units at every depth).
    Returns one dict per depth: depth, n (shared units), mean_diff, ci_low/ci_high (95%
    t-interval of the mean difference), t, p (paired t), p_wilcoxon, p_holm, higher / lower
    (significant with that sign).
    """
    return paired_family([(d, unit_values(curves, hi, d), unit_values(curves, lo, d))
                          for d in curves["depths"]], ALPHA, label="depth")


def _cite(row: dict) -> str:
    """"+2.0 pp [95% CI +1.1 pp, +2.9 pp], Holm-corrected p = 0.004, n = 4"."""
    ci = (f" [95% CI {signed_pp(row['ci_low'])}, {signed_pp(row['ci_high'])}]"
          if row["ci_low"] is not None else "")
    return f"{signed_pp(row['mean_diff'])}{ci}, Holm-corrected {fmt_p(row['p_holm'])}, " \
           f"n = {row['n']}"


def _missing(key: str, title: str, what: str) -> Finding:
    return Finding(key, title, None, f"Not measured: {what} has no finished trials.")


def _untested(key: str, title: str, comparison: str, rows: list[dict]) -> Finding | None:
    """The honest answer when no depth could be tested (None if some test ran)."""
    if any(r["p"] is not None for r in rows):
        return None
    big = max(rows, key=lambda r: abs(r["mean_diff"]))
    return Finding(key, title, None,
                   f"Not tested: a paired test needs 3 units (split seed, seed) per point "
                   f"with some spread, so this claim is not decided (largest single "
                   f"difference {comparison} {signed_pp(big['mean_diff'])} at n = "
                   f"{big['depth']}). Fix 3 or more units in the config before the run.",
                   [r["depth"] for r in rows], comparison, rows)


def _onset(hits: list[int], depths: list[int]) -> int | None:
    """Smallest n such that every measured depth >= n is a hit (None if the top is not)."""
    if not depths or depths[-1] not in hits:
        return None
    onset = depths[-1]
    for d in reversed(depths):
        if d not in hits:
            break
        onset = d
    return onset


def _strongest(rows: list[dict], key: str = "higher") -> dict:
    """The row with the largest difference, among the significant ones if any."""
    pick = [r for r in rows if r[key]] or rows
    return max(pick, key=lambda r: r["mean_diff"])


def specificity(curves: dict) -> Finding:
    """Paper: AnB drops below BnB at higher layers (features become specific to A)."""
    key, title, comp = "specificity", "AnB vs BnB (specificity)", "BnB − AnB"
    rows = paired_rows(curves, "BnB", "AnB")
    if not rows:
        return _missing(key, title, "AnB or BnB")
    if (untested := _untested(key, title, comp, rows)) is not None:
        return untested
    depths = [r["depth"] for r in rows]
    drops = [r["depth"] for r in rows if r["higher"]]
    top = _strongest(rows, "higher")
    onset = _onset(drops, depths)
    if not drops:
        text = (f"AnB never falls significantly below BnB (largest BnB − AnB {_cite(top)} at "
                f"n = {top['depth']}): the paper's drop of AnB at higher layers does not "
                "reproduce here; the features transfer from A to B without a measurable loss.")
        return Finding(key, title, False, text, depths, comp, rows)
    text = (f"AnB falls below BnB at n = {fmt_depths(drops)} (largest gap {_cite(top)} at "
            f"n = {top['depth']}).")
    if onset is not None:
        text += (f" From {_blocks(curves, onset)} upward the transferred features are specific "
                 "to A: the paper's specificity drop at higher layers reproduces.")
    else:
        text += (f" The gap does not persist up to the top depth n = {depths[-1]}, so the "
                 "paper's pattern (a drop that grows with n) does not reproduce.")
    return Finding(key, title, onset is not None, text, drops, comp, rows)


def coadaptation(curves: dict) -> Finding:
    """Paper: BnB dips below baseB at middle n (fragile co-adapted features), then recovers."""
    key, title, comp = "coadaptation", "BnB dip (co-adaptation)", "baseB − BnB"
    rows = paired_rows(curves, REFERENCE, "BnB")
    if not rows:
        return _missing(key, title, "BnB or baseB")
    if (untested := _untested(key, title, comp, rows)) is not None:
        return untested
    depths = [r["depth"] for r in rows]
    dips = [r["depth"] for r in rows if r["higher"]]
    top = _strongest(rows, "higher")
    if not dips:
        text = (f"BnB is not significantly below baseB at any n (largest baseB − BnB "
                f"{_cite(top)} at n = {top['depth']}): no co-adaptation dip; the paper's BnB "
                "dip does not reproduce here.")
        return Finding(key, title, False, text, depths, comp, rows)
    text = (f"BnB dips below baseB at n = {fmt_depths(dips)} (by up to {_cite(top)} at "
            f"n = {top['depth']}): re-training the upper blocks on top of frozen lower ones "
            "loses accuracy even on the same task, the paper's fragile co-adaptation")
    if depths[-1] not in dips:
        text += f"; BnB recovers to baseB's level at n = {depths[-1]}, as in the paper."
    else:
        text += f"; unlike the paper, BnB does not recover at the top depth n = {depths[-1]}."
    return Finding(key, title, True, text, dips, comp, rows)


def finetune_boost(curves: dict) -> Finding:
    """Paper: AnB+ beats baseB at every n (transfer plus fine-tuning generalises better)."""
    key, title, comp = "finetune_boost", "AnB+ vs baseB (fine-tuning boost)", "AnB+ − baseB"
    rows = paired_rows(curves, "AnB+", REFERENCE)
    if not rows:
        return _missing(key, title, "AnB+ or baseB")
    if (untested := _untested(key, title, comp, rows)) is not None:
        return untested
    above = [r["depth"] for r in rows if r["higher"]]
    below = [r["depth"] for r in rows if r["lower"]]
    mean_gap = sum(r["mean_diff"] for r in rows) / len(rows)
    n_all, n_units = len(rows), max(r["n"] for r in rows)
    summary = (f"mean difference over n {signed_pp(mean_gap)}; paired t-tests over {n_units} "
               f"units, Holm-corrected over {n_all} depths")
    if above and not below:
        text = (f"AnB+ beats baseB at n = {fmt_depths(above)} ({len(above)} of {n_all} depths; "
                f"{summary}): transferring from A and fine-tuning generalises better than "
                "training on B alone; the paper's fine-tuning boost reproduces"
                + ("." if len(above) == n_all else " at those depths (elsewhere not "
                   "significant)."))
        return Finding(key, title, True, text, above, comp, rows)
    if below:
        text = (f"AnB+ falls below baseB at n = {fmt_depths(below)} ({summary})"
                + (f" and beats it at n = {fmt_depths(above)}" if above else "")
                + ": the paper's fine-tuning boost does not reproduce here.")
        return Finding(key, title, False, text, below, comp, rows)
    text = (f"AnB+ is not significantly different from baseB at any n ({summary}): "
            "fine-tuning recovers baseB's accuracy but the paper's boost above it does not "
            "reproduce here.")
    return Finding(key, title, False, text, [], comp, rows)


def random_features(curves: dict) -> Finding:
    """Paper: random frozen lower layers are worse than transferred ones (even from A)."""
    key, title, comp = "random_features", "random features vs AnB", "AnB − random"
    rows = paired_rows(curves, "AnB", "random")
    if not rows:
        return _missing(key, title, "random or AnB")
    if (untested := _untested(key, title, comp, rows)) is not None:
        return untested
    depths = [r["depth"] for r in rows]
    worse = [r["depth"] for r in rows if r["higher"]]
    better = [r["depth"] for r in rows if r["lower"]]
    top = _strongest(rows, "higher")
    if not worse:
        text = (f"Random frozen features are not significantly worse than AnB's transferred "
                f"ones at any n (largest AnB − random {_cite(top)} at n = {top['depth']})"
                + (f"; they are better at n = {fmt_depths(better)}" if better else "")
                + ": the paper's finding that transferred features beat random ones does not "
                  "reproduce here.")
        return Finding(key, title, False, text, depths, comp, rows)
    onset = _onset(worse, depths)
    text = (f"Random frozen features fall below AnB at n = {fmt_depths(worse)} (by up to "
            f"{_cite(top)} at n = {top['depth']})")
    if onset is not None:
        text += (f"; from {_blocks(curves, onset)} upward, features transferred even from the "
                 "other half beat random ones, as in the paper.")
    else:
        text += (f", but not at the top depth n = {depths[-1]}, so the paper's pattern (random "
                 "features worse, increasingly so with n) reproduces only in part.")
    return Finding(key, title, onset is not None, text, worse, comp, rows)


def _relative_drops(curves: dict) -> dict[int, list[float]]:
    """{n: [1 - AnB/baseB per unit]}: each unit's AnB relative to the same unit's baseB."""
    base = unit_values(curves, REFERENCE)
    out = {}
    for d in curves["depths"]:
        _, anb, ref = pair_up(unit_values(curves, "AnB", d), base)
        drops = [1 - a / b for a, b in zip(anb, ref) if b]
        if drops:
            out[d] = drops
    return out


def dissimilar_vs_random(curves: dict, other: dict | None) -> Finding:
    """Paper: AnB's drop (relative to baseB) is larger for dissimilar tasks."""
    key, title, comp = "dissimilar", "dissimilar vs random split", \
        "drop(dissimilar) − drop(random)"
    if other is None:
        return Finding(key, title, None, "Not compared: no result of the other split was "
                       "given; run both splits and pass the other one's curves.json with "
                       "--compare.")
    split = curves.get("settings", {}).get("split")
    dis, rnd = (curves, other) if split == "dissimilar" else (other, curves)
    r_dis, r_rnd = _relative_drops(dis), _relative_drops(rnd)
    common = sorted(set(r_dis) & set(r_rnd))
    if not common:
        return _missing(key, title, "AnB or baseB of one split")
    rows = []
    for d in common:
        w = welch_test(r_dis[d], r_rnd[d])
        rows.append({"depth": d, "n": w.n, "mean_diff": w.mean_diff,
                     "ci_low": w.ci[0] if w.ci else None, "ci_high": w.ci[1] if w.ci else None,
                     "t": w.statistic, "p": w.p, "p_wilcoxon": None,
                     "drop_dissimilar": sum(r_dis[d]) / len(r_dis[d]),
                     "drop_random": sum(r_rnd[d]) / len(r_rnd[d])})
    decide(rows, ALPHA)
    top = rows[-1]
    text = (f"Relative to its own baseB, AnB loses {100 * top['drop_dissimilar']:.1f}% at "
            f"n = {top['depth']} on the dissimilar split versus "
            f"{100 * top['drop_random']:.1f}% on the random split")
    if top["p"] is None:
        return Finding(key, title, None, text + "; with one unit per split no test is "
                       "possible, so this claim is not decided. Run --seeds 2 or more.",
                       common, comp, rows)
    text += (f" (Welch t-test on the per-unit drops, Holm-corrected over {len(rows)} depths: "
             f"{fmt_p(top['p_holm'])}).")
    larger = [r["depth"] for r in rows if r["higher"]]
    if top["higher"]:
        text += (f" The drop is larger for the dissimilar split at n = {fmt_depths(larger)}: "
                 "transferability falls as the tasks grow less similar, as in the paper.")
        return Finding(key, title, True, text, larger, comp, rows)
    text += (" The dissimilar split's drop is not significantly larger at the top depth"
             + (f" (it is at n = {fmt_depths(larger)})" if larger else "")
             + ": the paper's larger drop for dissimilar tasks does not reproduce here.")
    return Finding(key, title, False, text, larger, comp, rows)


def rule(curves: dict) -> str:
    """The decision rule as a sentence, with the units the tests can use."""
    n = max([curves[REFERENCE]["n"]] + [max(c["n"], default=0)
                                        for c in curves["conditions"].values()])
    if n < 2:
        return ("One unit (split seed, seed) per point: no paired test is possible, so no "
                "claim is decided; the report shows the single values. Run --seeds 2 or more.")
    return (f"Each claim compares two curves at every depth n with a two-sided paired t-test "
            f"across the units they share (up to {n} (split seed, seed) pairs: the same "
            "halves and base networks); the depths of one claim are one family, "
            f"Holm-corrected, and a difference counts where the corrected p < {ALPHA:g}. "
            "Intervals are 95% t-intervals; the Wilcoxon signed-rank p is listed beside each "
            "t-test.")


def findings(curves: dict, compare: dict | None = None) -> tuple[str, list[Finding]]:
    """(a sentence stating the decision rule, the findings) for ``curves``.

    ``compare`` is the curves of the other split (random vs dissimilar), when available.
    """
    out = [specificity(curves), coadaptation(curves), finetune_boost(curves),
           random_features(curves), dissimilar_vs_random(curves, compare)]
    return rule(curves), out
