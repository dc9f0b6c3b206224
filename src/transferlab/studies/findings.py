"""Findings sentences, generated from the measured curves (never written in advance).

Each of the paper's claims is tested on the numbers with one explicit rule: a difference
between two means counts when it exceeds ``K`` × σ × sqrt(1/n1 + 1/n2) (the noise of a
difference of two means of n1 and n2 seeds), and at least ``FLOOR``. σ is the seed std
pooled over every depth of the two curves being compared: pooling over the whole study would
let a noisy curve (random features near chance vary a lot between seeds) blunt every other
comparison. With a single seed there is no noise estimate and a fixed ``SINGLE_SEED``
threshold is used; the text says so. Where a claim does not hold in the numbers, the sentence says it does not
reproduce.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from transferlab.studies.curves import REFERENCE, mean_at, pooled_std

K = 2.0             # differences beyond K standard errors count
FLOOR = 0.005       # ... and beyond half a percentage point (std 0 would make any gap count)
SINGLE_SEED = 0.01  # threshold when no seed std exists (one seed per point)


@dataclass
class Finding:
    """One claim of the paper tested on the curves.

    ``reproduced`` is True / False, or None when it could not be measured.
    """

    key: str
    title: str
    reproduced: bool | None
    text: str
    depths: list[int] = field(default_factory=list)  # where the effect was measured

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Noise:
    """The seed noise of one comparison and the threshold rule built on it."""

    sigma: float | None  # pooled seed std (accuracy units), None with one seed

    def threshold(self, n1: int, n2: int) -> float:
        """The smallest difference of two means (of n1 and n2 seeds) that counts."""
        if self.sigma is None or n1 < 1 or n2 < 1:
            return SINGLE_SEED
        return max(K * self.sigma * math.sqrt(1 / n1 + 1 / n2), FLOOR)

    def describe(self, n_seeds: int) -> str:
        """The rule as a sentence (``sigma`` None: the single-seed rule)."""
        if self.sigma is None:
            return (f"One seed per point gives no seed std, so a difference counts when it "
                    f"exceeds a fixed {pp(SINGLE_SEED)}; run more seeds for a noise-based test.")
        factor = K * math.sqrt(2 / n_seeds)
        return (f"A difference between two means counts when it exceeds {K:g} × σ × "
                f"√(1/n₁ + 1/n₂), and at least {pp(FLOOR)}, where σ is the seed std pooled "
                f"over every depth of the two curves compared; with {n_seeds} seeds per point "
                f"that is {factor:.2f} σ.")

    def label(self, threshold: float) -> str:
        """"threshold 0.6 pp, σ = 0.3 pp" for the sentences."""
        sig = "one seed" if self.sigma is None else f"σ = {pp(self.sigma)}"
        return f"threshold {pp(threshold)}, {sig}"


def pp(x: float) -> str:
    """An accuracy difference in percentage points."""
    return f"{100 * x:.1f} pp"


def signed_pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


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


def _pairs(curves: dict, hi: str, lo: str) -> tuple[Noise, list[tuple[int, float, float]]]:
    """The noise of ``hi`` vs ``lo``, and (depth, mean(hi) - mean(lo), threshold) at every
    depth where both were measured.

    ``hi`` / ``lo`` are condition names or ``REFERENCE`` (the same value at every depth).
    """
    noise = Noise(pooled_std(curves, [hi, lo]))
    out = []
    base = curves[REFERENCE]
    for d in curves["depths"]:
        vals = []
        for name in (hi, lo):
            vals.append((base["mean"], base["n"]) if name == REFERENCE
                        else mean_at(curves, name, d))
        (m1, n1), (m2, n2) = vals
        if m1 is not None and m2 is not None:
            out.append((d, m1 - m2, noise.threshold(n1, n2)))
    return noise, out


def _missing(key: str, title: str, what: str) -> Finding:
    return Finding(key, title, None, f"Not measured: {what} has no finished trials.")


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


def specificity(curves: dict) -> Finding:
    """Paper: AnB drops below BnB at higher layers (features become specific to A)."""
    title = "AnB vs BnB (specificity)"
    noise, pairs = _pairs(curves, "BnB", "AnB")
    if not pairs:
        return _missing("specificity", title, "AnB or BnB")
    depths = [d for d, _, _ in pairs]
    drops = [d for d, gap, thr in pairs if gap > thr]
    d_max, g_max, t_max = max(pairs, key=lambda p: p[1])
    onset = _onset(drops, depths)
    if not drops:
        text = (f"AnB never falls measurably below BnB (largest BnB − AnB {signed_pp(g_max)} at "
                f"n = {d_max}, {noise.label(t_max)}): the paper's drop of AnB at higher layers does not "
                "reproduce here; the features transfer from A to B without a measurable loss.")
        return Finding("specificity", title, False, text, depths)
    text = (f"AnB falls below BnB at n = {fmt_depths(drops)} (largest gap {pp(g_max)} at "
            f"n = {d_max}, {noise.label(t_max)}).")
    if onset is not None:
        text += (f" From {_blocks(curves, onset)} upward the transferred features are specific "
                 "to A: the paper's specificity drop at higher layers reproduces.")
    else:
        text += (f" The gap does not persist up to the top depth n = {depths[-1]}, so the "
                 "paper's pattern (a drop that grows with n) does not reproduce.")
    return Finding("specificity", title, onset is not None, text, drops)


def coadaptation(curves: dict) -> Finding:
    """Paper: BnB dips below baseB at middle n (fragile co-adapted features), then recovers."""
    title = "BnB dip (co-adaptation)"
    noise, pairs = _pairs(curves, REFERENCE, "BnB")
    if not pairs:
        return _missing("coadaptation", title, "BnB or baseB")
    depths = [d for d, _, _ in pairs]
    dips = [d for d, gap, thr in pairs if gap > thr]
    d_max, g_max, t_max = max(pairs, key=lambda p: p[1])
    if not dips:
        text = (f"BnB stays within noise of baseB at every n (largest baseB − BnB "
                f"{signed_pp(g_max)} at n = {d_max}, {noise.label(t_max)}): no co-adaptation "
                "dip; the paper's BnB dip does not reproduce here.")
        return Finding("coadaptation", title, False, text, depths)
    text = (f"BnB dips below baseB at n = {fmt_depths(dips)} (by up to {pp(g_max)} at "
            f"n = {d_max}, {noise.label(t_max)}): re-training the upper blocks on top of "
            "frozen lower ones loses accuracy even on the same task, the paper's fragile "
            "co-adaptation")
    if depths[-1] not in dips:
        text += f"; BnB recovers to baseB's level at n = {depths[-1]}, as in the paper."
    else:
        text += f"; unlike the paper, BnB does not recover at the top depth n = {depths[-1]}."
    return Finding("coadaptation", title, True, text, dips)


def finetune_boost(curves: dict) -> Finding:
    """Paper: AnB+ beats baseB at every n (transfer plus fine-tuning generalises better)."""
    title = "AnB+ vs baseB (fine-tuning boost)"
    noise, pairs = _pairs(curves, "AnB+", REFERENCE)
    if not pairs:
        return _missing("finetune_boost", title, "AnB+ or baseB")
    above = [d for d, gap, thr in pairs if gap > thr]
    below = [d for d, gap, thr in pairs if -gap > thr]
    mean_gap = sum(g for _, g, _ in pairs) / len(pairs)
    thr = max(t for _, _, t in pairs)
    n_all = len(pairs)
    if above and not below:
        text = (f"AnB+ beats baseB at n = {fmt_depths(above)} ({len(above)} of {n_all} depths; "
                f"mean difference over n {signed_pp(mean_gap)}, {noise.label(thr)}): "
                "transferring from A and fine-tuning generalises better than training on B "
                "alone; the paper's fine-tuning boost reproduces"
                + ("." if len(above) == n_all else " at those depths (elsewhere within noise)."))
        return Finding("finetune_boost", title, True, text, above)
    if below:
        text = (f"AnB+ falls below baseB at n = {fmt_depths(below)} (mean difference over n "
                f"{signed_pp(mean_gap)}, {noise.label(thr)})"
                + (f" and beats it at n = {fmt_depths(above)}" if above else "")
                + ": the paper's fine-tuning boost does not reproduce here.")
        return Finding("finetune_boost", title, False, text, below)
    text = (f"AnB+ is within noise of baseB at every n (mean difference over n "
            f"{signed_pp(mean_gap)}, {noise.label(thr)}): fine-tuning recovers baseB's "
            "accuracy but the paper's boost above it does not reproduce here.")
    return Finding("finetune_boost", title, False, text, [])


def random_features(curves: dict) -> Finding:
    """Paper: random frozen lower layers are worse than transferred ones (even from A)."""
    title = "random features vs AnB"
    noise, pairs = _pairs(curves, "AnB", "random")
    if not pairs:
        return _missing("random_features", title, "random or AnB")
    depths = [d for d, _, _ in pairs]
    worse = [d for d, gap, thr in pairs if gap > thr]
    better = [d for d, gap, thr in pairs if -gap > thr]
    d_max, g_max, t_max = max(pairs, key=lambda p: p[1])
    if not worse:
        text = (f"Random frozen features are not measurably worse than AnB's transferred ones "
                f"at any n (largest AnB − random {signed_pp(g_max)} at n = {d_max}, "
                f"{noise.label(t_max)})"
                + (f"; they are better at n = {fmt_depths(better)}" if better else "")
                + ": the paper's finding that transferred features beat random ones does not "
                  "reproduce here.")
        return Finding("random_features", title, False, text, depths)
    onset = _onset(worse, depths)
    text = (f"Random frozen features fall below AnB at n = {fmt_depths(worse)} (by up to "
            f"{pp(g_max)} at n = {d_max}, {noise.label(t_max)})")
    if onset is not None:
        text += (f"; from {_blocks(curves, onset)} upward, features transferred even from the "
                 "other half beat random ones, as in the paper.")
    else:
        text += (f", but not at the top depth n = {depths[-1]}, so the paper's pattern (random "
                 "features worse, increasingly so with n) reproduces only in part.")
    return Finding("random_features", title, onset is not None, text, worse)


def _relative_drops(curves: dict) -> dict[int, tuple[float, float]]:
    """{n: (1 - AnB/baseB, its standard error)} from the pooled seed std."""
    base = curves[REFERENCE]
    if base["mean"] is None or not base["mean"]:
        return {}
    sigma = pooled_std(curves, ["AnB", REFERENCE])
    out = {}
    for d in curves["depths"]:
        m, n = mean_at(curves, "AnB", d)
        if m is None:
            continue
        se = (sigma / base["mean"] * math.sqrt(1 / n + 1 / base["n"])
              if sigma is not None else None)
        out[d] = (1 - m / base["mean"], se)
    return out


def dissimilar_vs_random(curves: dict, other: dict | None) -> Finding:
    """Paper: AnB's drop (relative to baseB) is larger for dissimilar tasks."""
    title = "dissimilar vs random split"
    key = "dissimilar"
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
        (a, sa), (b, sb) = r_dis[d], r_rnd[d]
        thr = (max(K * math.sqrt(sa ** 2 + sb ** 2), FLOOR) if sa is not None and
               sb is not None else SINGLE_SEED)
        rows.append((d, a, b, thr))
    larger = [d for d, a, b, thr in rows if a - b > thr]
    top, a_top, b_top, t_top = rows[-1]
    text = (f"Relative to its own baseB, AnB loses {100 * a_top:.1f}% at n = {top} on the "
            f"dissimilar split versus {100 * b_top:.1f}% on the random split (threshold for "
            f"the difference {100 * t_top:.1f}%).")
    if top in larger:
        text += (f" The drop is larger for the dissimilar split at n = {fmt_depths(larger)}: "
                 "transferability falls as the tasks grow less similar, as in the paper.")
        return Finding(key, title, True, text, larger)
    text += (" The dissimilar split's drop is not measurably larger at the top depth"
             + (f" (it is at n = {fmt_depths(larger)})" if larger else "")
             + ": the paper's larger drop for dissimilar tasks does not reproduce here.")
    return Finding(key, title, False, text, larger)


def findings(curves: dict, compare: dict | None = None) -> tuple[str, list[Finding]]:
    """(a sentence stating the threshold rule, the findings) for ``curves``.

    ``compare`` is the curves of the other split (random vs dissimilar), when available.
    """
    n_seeds = max([curves[REFERENCE]["n"]] + [max(c["n"], default=0)
                                              for c in curves["conditions"].values()])
    noise = Noise(pooled_std(curves) if n_seeds > 1 else None)
    out = [specificity(curves), coadaptation(curves), finetune_boost(curves),
           random_features(curves), dissimilar_vs_random(curves, compare)]
    return noise.describe(n_seeds), out
