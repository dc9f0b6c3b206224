"""Statistics every study needs: summaries, confidence intervals, paired tests, Holm.

Studies compare conditions trained from the same seeds (the same base networks, the same
class splits), so the natural test is *paired*: the difference of two conditions is taken
per shared unit (e.g. a (split seed, seed) pair) and tested against zero. A study's claim
usually rests on a family of such tests (one per depth, say); ``holm`` corrects the family's
p-values so that the chance of any false claim stays below alpha.

Everything is a thin layer over ``scipy.stats`` (t distribution, ``ttest_rel``,
``wilcoxon``, ``ttest_ind``, ``bootstrap``); the layer handles the edge cases studies hit
(one value, identical values) by returning ``None`` where a quantity is undefined, never NaN.
A paired test with fewer than ``MIN_UNITS`` units or zero-variance differences is "not
tested" (a status of its own, p None), never p = 0.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st

from transferlab.errors import bad_value

LEVEL = 0.95
ALPHA = 0.05  # family-wise error rate of one claim
METHODS = ("t", "wilcoxon")
# A paired test needs at least this many units. With two, a t-test has one degree of freedom
# and a "significant" result says little; two identical seeds must never make a finding.
MIN_UNITS = 3
TESTED, NOT_TESTED = "tested", "not tested"


def _array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample std with ddof = 1); None where undefined (no value; std of one)."""
    arr = _array(values)
    if not arr.size:
        return None, None
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean: mean ± t_{(1+level)/2, n-1} · s / √n.

    None with fewer than two values (no spread estimate).
    """
    arr = _array(values)
    if arr.size < 2:
        return None
    mean, sem = float(arr.mean()), float(arr.std(ddof=1)) / math.sqrt(arr.size)
    half = float(st.t.ppf((1 + level) / 2, arr.size - 1)) * sem
    return mean - half, mean + half


def bootstrap_ci(values: Sequence[float], level: float = LEVEL, n_resamples: int = 9999,
                 seed: int = 0, method: str = "percentile") -> tuple[float, float] | None:
    """Bootstrap confidence interval of the mean (``scipy.stats.bootstrap``, seeded).

    None with fewer than two values; the interval collapses to the value when all are equal
    (scipy would warn and return NaN for that degenerate case).
    """
    arr = _array(values)
    if arr.size < 2:
        return None
    if np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    res = st.bootstrap((arr,), np.mean, confidence_level=level, n_resamples=n_resamples,
                       method=method, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class TestResult:
    """One two-sided test of "no difference".

    ``mean_diff`` is mean(x) - mean(y) (for paired tests: the mean of the per-unit
    differences) and ``ci`` its 95% t-interval. ``status`` is ``"tested"`` or
    ``"not tested"``; when not tested (fewer than ``MIN_UNITS`` pairs, or differences with
    zero variance), ``statistic`` and ``p`` are None, never a made-up 0 or 1, and ``reason``
    says why.
    """

    method: str
    n: int
    mean_diff: float | None
    ci: tuple[float, float] | None
    statistic: float | None
    p: float | None
    status: str = TESTED
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(x: Sequence[float], y: Sequence[float], method: str = "t") -> TestResult:
    """Two-sided paired test of x against y (aligned: x[i] and y[i] share a unit).

    ``method``: "t" (``scipy.stats.ttest_rel``) or "wilcoxon" (signed-rank,
    ``scipy.stats.wilcoxon``; exact distribution for small n, zero differences dropped).
    "not tested" (``status``; p None) with fewer than ``MIN_UNITS`` pairs or when the
    differences have no spread (all equal, up to rounding): a t statistic of 0/0 or x/0 is
    no evidence, and reporting p = 0 for two identical seeds would make a finding of nothing.
    """
    if method not in METHODS:
        raise bad_value("method", method, " or ".join(METHODS))
    a, b = _array(x), _array(y)
    if a.shape != b.shape:
        raise bad_value("y", f"{b.size} values", f"as many values as x ({a.size})",
                        "pair the values by unit first (see pair_up)")
    diff = a - b
    n = int(diff.size)
    mean_diff = float(diff.mean()) if n else None
    ci = t_interval(diff)
    if n < MIN_UNITS:
        return TestResult(method, n, mean_diff, ci, None, None, NOT_TESTED,
                          f"{n} paired unit(s); a test needs at least {MIN_UNITS}")
    if np.ptp(diff) <= 1e-12 * max(float(np.abs(diff).max()), 1e-300):
        return TestResult(method, n, mean_diff, ci, None, None, NOT_TESTED,
                          "the paired differences have zero variance")
    if method == "t":
        res = st.ttest_rel(a, b)
    else:
        res = st.wilcoxon(a, b)
    return TestResult(method, n, mean_diff, ci, float(res.statistic), float(res.pvalue))


def welch_test(x: Sequence[float], y: Sequence[float]) -> TestResult:
    """Two-sided Welch t-test (unequal variances) of two independent samples.

    For comparisons that share no units (two studies on different data). ``ci`` is the
    Welch interval of mean(x) - mean(y). "Not tested" (p None) unless both samples have
    ``MIN_UNITS`` values and some spread.
    """
    a, b = _array(x), _array(y)
    mean_diff = float(a.mean() - b.mean()) if a.size and b.size else None
    n = int(min(a.size, b.size))
    if a.size < MIN_UNITS or b.size < MIN_UNITS:
        return TestResult("welch", n, mean_diff, None, None, None, NOT_TESTED,
                          f"{n} value(s) in the smaller sample; a test needs {MIN_UNITS}")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return TestResult("welch", n, mean_diff, (mean_diff, mean_diff), None, None,
                          NOT_TESTED, "both samples have zero variance")
    res = st.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(LEVEL)
    return TestResult("welch", n, mean_diff, (float(ci.low), float(ci.high)),
                      float(res.statistic), float(res.pvalue))


def pair_up(x: Mapping[Hashable, float], y: Mapping[Hashable, float]
            ) -> tuple[list, list[float], list[float]]:
    """(shared units in sorted order, x's values, y's values) for units both measured."""
    units = sorted(set(x) & set(y))
    return units, [x[u] for u in units], [y[u] for u in units]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjusted p-values, in the input's order.

    Sort the m tested p-values ascending, multiply the i-th (0-based) by m - i, take the
    running maximum (adjusted p-values never decrease along the order) and cap at 1.
    Rejecting where the adjusted p < alpha controls the family-wise error rate at alpha.
    ``None`` entries (tests that could not be run) are left out of the family and stay None.
    """
    tested = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    m, running = len(tested), 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (m - rank) * float(p)))
        out[i] = running
    return out


def decide(rows: list[dict], alpha: float = ALPHA) -> list[dict]:
    """Holm-correct a family of test rows (dicts with "p" and "mean_diff") in place.

    Adds ``p_holm`` and ``higher`` / ``lower``: significant (corrected p < alpha) with a
    positive / negative mean difference. Returns ``rows``.
    """
    for row, p_holm in zip(rows, holm([r["p"] for r in rows])):
        sig = p_holm is not None and p_holm < alpha
        row.update(p_holm=p_holm, higher=sig and row["mean_diff"] > 0,
                   lower=sig and row["mean_diff"] < 0)
    return rows


def paired_family(groups: Sequence[tuple[Hashable, Mapping, Mapping]], alpha: float = ALPHA,
                  label: str = "label") -> list[dict]:
    """One claim's family of paired tests: for each ``(label, x_by_unit, y_by_unit)``, the
    paired t-test (and Wilcoxon p) of x − y over the units both measured, then Holm over the
    family (``decide``). Groups with no shared unit are left out.

    Returns dicts: ``label`` (under the key ``label``), n, mean_diff, ci_low, ci_high (95%
    t-interval of the mean difference), t, p, p_wilcoxon, status ("tested" / "not tested"),
    reason, p_holm, higher, lower. A "not tested" row has p None and is never significant.
    """
    rows = []
    for name, xs, ys in groups:
        _, x, y = pair_up(xs, ys)
        if not x:
            continue
        t, w = paired_test(x, y, "t"), paired_test(x, y, "wilcoxon")
        rows.append({label: name, "n": t.n, "mean_diff": t.mean_diff,
                     "ci_low": t.ci[0] if t.ci else None, "ci_high": t.ci[1] if t.ci else None,
                     "t": t.statistic, "p": t.p, "p_wilcoxon": w.p, "status": t.status,
                     "reason": t.reason})
    return decide(rows, alpha)


def fmt_p(p: float | None) -> str:
    """A p-value as the reports print it: "p < 0.001", "p = 0.042", or "not tested" (None:
    fewer than ``MIN_UNITS`` units or zero variance, see ``paired_test``)."""
    if p is None:
        return NOT_TESTED
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def signed_pp(x: float) -> str:
    """An accuracy difference in signed percentage points: 0.031 -> "+3.1 pp"."""
    return f"{100 * x:+.1f} pp"
