"""The paper's four claims, decided from the per-replicate numbers (never written ahead).

Units are the ensemble replicates (trial seeds): every strategy of one replicate shares the
source members and the target sample, so comparisons are paired across replicates.

1. competitive accuracy: ``shift`` (its own, matched budget) is non-inferior to
   ``independent`` (full budget) with a margin of 1 point: one-sided paired t-test of
   H0: acc_shift - acc_ind <= -0.01;
2. competitive uncertainty: NLL non-inferior with a margin of 5% of independent's NLL
   (H0: nll_shift - nll_ind >= 0.05 nll_ind); ECE reported beside it;
3. higher disagreement: disagreement_shift > disagreement_ind (one-sided paired t-test);
4. cheaper member addition: adding a member by shift + tiny fine-tune takes less time than
   fine-tuning it fully (one-sided paired t-test of the times); the ratio is reported.

The four p-values are one family, Holm-corrected; a claim holds when its corrected p <
``ALPHA``. With fewer than 2 replicates nothing is tested and the finding says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from transferlab.studies.kit.stats import ALPHA, holm


@dataclass
class Finding:
    key: str
    title: str
    reproduced: bool | None
    text: str
    test: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def one_sided(diff: list[float], shift: float, greater: bool) -> dict:
    """Paired one-sided t-test of mean(diff) + shift > 0 (``greater``) or < 0."""
    from scipy import stats as st

    d = np.asarray(diff, dtype=float)
    out = {"n": int(len(d)), "mean_diff": float(d.mean()) if len(d) else None, "p": None,
           "ci_low": None, "ci_high": None, "margin": -shift}
    if len(d) < 2:
        return out
    if np.allclose(d, d[0]):  # no spread: the sign alone decides (a t-test is undefined)
        ok = (d[0] + shift > 0) if greater else (d[0] + shift < 0)
        out["p"] = 0.0 if ok else 1.0
    else:
        res = st.ttest_1samp(d + shift, 0.0, alternative="greater" if greater else "less")
        out["p"] = float(res.pvalue)
    half = float(st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    out["ci_low"], out["ci_high"] = float(d.mean() - half), float(d.mean() + half)
    return out


def _by_seed(units: dict, label: str, metric: str) -> dict:
    return {s: rows[label][metric] for s, rows in units.items()
            if label in rows and rows[label].get(metric) is not None}


def _paired(a: dict, b: dict) -> list[float]:
    shared = sorted(set(a) & set(b))
    return [a[s] - b[s] for s in shared]


def findings(units: dict, adds: dict, shift: str, baseline: str) -> tuple[str, list[Finding]]:
    """``units``: seed -> strategy label -> metrics row; ``adds``: seed -> add result."""
    acc = _paired(_by_seed(units, shift, "accuracy"), _by_seed(units, baseline, "accuracy"))
    nll_ind = _by_seed(units, baseline, "nll")
    nll = _paired(_by_seed(units, shift, "nll"), nll_ind)
    margin_nll = 0.05 * float(np.mean(list(nll_ind.values()))) if nll_ind else 0.0
    dis = _paired(_by_seed(units, shift, "disagreement"),
                  _by_seed(units, baseline, "disagreement"))
    add = [adds[s]["add_time_s"] - adds[s]["full_time_s"] for s in sorted(adds)
           if adds[s].get("full_time_s") is not None]
    ratio = [adds[s]["time_ratio"] for s in sorted(adds) if adds[s].get("time_ratio")]
    tests = [one_sided(acc, 0.01, True), one_sided(nll, -margin_nll, False),
             one_sided(dis, 0.0, True), one_sided(add, 0.0, False)]
    for t, p in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = p
    ece = _paired(_by_seed(units, shift, "ece"), _by_seed(units, baseline, "ece"))

    def verdict(t: dict) -> bool | None:
        return None if t["p_holm"] is None else bool(t["p_holm"] < ALPHA)

    def tail(t: dict) -> str:
        if t["p_holm"] is None:
            return f"not tested ({t['n']} replicate(s); a test needs 2)"
        ci = f"95% CI [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]"
        return f"{ci}, n = {t['n']}, Holm-corrected one-sided p = {t['p_holm']:.3g}"

    def word(v):
        return {True: "holds", False: "does not hold", None: "is not decided"}[v]

    out = []
    t = tests[0]
    v = verdict(t)
    out.append(Finding("accuracy", "Competitive accuracy", v,
                       f"{shift} vs {baseline}: ensemble accuracy difference "
                       f"{t['mean_diff']:+.4f} (margin -0.01): the claim {word(v)}; "
                       + tail(t), t) if t["mean_diff"] is not None else
               Finding("accuracy", "Competitive accuracy", None, "no shared replicate", t))
    t = tests[1]
    v = verdict(t)
    ece_text = f"; ECE difference {np.mean(ece):+.4f}" if ece else ""
    out.append(Finding("uncertainty", "Competitive uncertainty (NLL)", v,
                       f"{shift} vs {baseline}: NLL difference {t['mean_diff']:+.4f} (margin "
                       f"+{margin_nll:.4f} = 5% of {baseline}'s NLL): the claim {word(v)}; "
                       + tail(t) + ece_text, t) if t["mean_diff"] is not None else
               Finding("uncertainty", "Competitive uncertainty (NLL)", None, "no data", t))
    t = tests[2]
    v = verdict(t)
    out.append(Finding("disagreement", "Higher disagreement", v,
                       f"{shift} - {baseline}: disagreement difference {t['mean_diff']:+.4f}: "
                       f"the claim {word(v)}; " + tail(t), t) if t["mean_diff"] is not None
               else Finding("disagreement", "Higher disagreement", None, "no data", t))
    t = tests[3]
    v = verdict(t)
    rtext = (f"; time ratio add / full fine-tune {np.mean(ratio):.3f} (goal <= 0.2)"
             if ratio else "")
    out.append(Finding("addition", "Cheaper addition of a member", v,
                       f"adding a member by shift + tiny fine-tune vs fine-tuning it fully: "
                       f"time difference {t['mean_diff']:+.2f} s: the claim {word(v)}; "
                       + tail(t) + rtext, t) if t["mean_diff"] is not None else
               Finding("addition", "Cheaper addition of a member", None, "no addition run", t))
    rule = (f"Units: {len(units)} ensemble replicate(s). Each claim is a one-sided paired "
            f"t-test across replicates; the four p-values are Holm-corrected; a claim holds "
            f"when its corrected p < {ALPHA}.")
    return rule, out
