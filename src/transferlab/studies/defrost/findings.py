"""The four findings of Gerace et al. (2023), decided from the measured numbers.

The unit of every test is a seed (one generator / target draw, one source network, one
initialisation per trial), shared by every depth, size and level, so every comparison is a
two-sided paired t-test across seeds (``kit.stats.paired_family``; the Wilcoxon p is stored
beside it) with Holm's correction over the claim's family:

1. *Full freezing is not always optimal*: per cell with n* < L, accuracy at n* minus at
   n = L. Reproduced if some cell's difference is significantly positive. n* is picked on
   validation (``curves.select_depth``), so this test difference is not a winner's curse.
2. *n* changes with N and with correlation*: per-seed n* at the smallest vs the largest N
   (one test per level), and at the lowest vs the highest level (one test per N).
   Reproduced if both families have a significant difference (with one level: N only).
3. *n*(smallest N) >= n*(largest N)*, per level: reproduced if the mean-based n* satisfy it
   at every level, strictly at one at least (equality everywhere shows nothing), some
   per-seed difference is significantly positive and none significantly negative.
4. *n*(highest correlation) >= n*(lowest)*, per N: the same rule.

Per-seed n* are integers: with few seeds identical differences give t-test p = 0 (the
kit's zero-spread convention) while the exact Wilcoxon p cannot fall below 0.25 with 3
seeds; both are reported. With one seed nothing is tested (``reproduced`` None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from transferlab.studies.defrost.curves import by_seed, cell, optimum, seed_optimum
from transferlab.studies.kit.stats import ALPHA, fmt_p, paired_family


@dataclass
class Finding:
    key: str
    title: str
    reproduced: bool | None
    text: str
    tests: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def pp(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} pp"


def _label(n, level) -> str:
    return f"N={n}, corr={level}"


def _tested(rows: list[dict]) -> bool:
    return any(r["p"] is not None for r in rows)


def gains(curves: dict, num_blocks: int) -> list[dict]:
    """Per cell: n*, and its paired gain over n = L (full freezing) and over scratch,
    each family Holm-corrected over the cells."""
    groups_full, groups_scr, meta = [], [], {}
    for opt in curves["optimal"]:
        n, lv, best = opt["target_size"], opt["correlation"], opt["depth"]
        label = _label(n, lv)
        meta[label] = opt
        top = by_seed(cell(curves, n, lv, best))
        groups_full.append((label, top, by_seed(cell(curves, n, lv, num_blocks))))
        groups_scr.append((label, top, by_seed(cell(curves, n, lv, kind="scratch"))))
    full = {r["cell"]: r for r in paired_family(groups_full, ALPHA, label="cell")}
    scr = {r["cell"]: r for r in paired_family(groups_scr, ALPHA, label="cell")}
    return [{"target_size": m["target_size"], "correlation": m["correlation"],
             "depth": m["depth"], "mean": m["mean"], "vs_full_freeze": full.get(label),
             "vs_scratch": scr.get(label)} for label, m in meta.items()]


def not_optimal(curves: dict, gain_rows: list[dict], num_blocks: int) -> Finding:
    key, title = "full_freeze_not_optimal", "(1) Freezing the whole extractor is not optimal"
    rows = [g["vs_full_freeze"] for g in gain_rows
            if g["depth"] != num_blocks and g["vs_full_freeze"] is not None]
    n_cells = len(gain_rows)
    below = [g for g in gain_rows if g["depth"] != num_blocks]
    if not rows:
        return Finding(key, title, None if n_cells == 0 else False,
                       f"n* = L = {num_blocks} (full freezing) in every one of {n_cells} cells."
                       if n_cells else "Not measured: no cell has finished trials.", [])
    if not _tested(rows):
        return Finding(key, title, None, f"n* < L in {len(below)} of {n_cells} cells, but one "
                       "seed allows no paired test; run --seeds 2 or more.", rows)
    sig = [r for r in rows if r["higher"]]
    best = max(rows, key=lambda r: r["mean_diff"])
    caveat = " (n* chosen on validation, the gains measured on test)"
    if sig:
        cells = "; ".join(f"{r['cell']}: {pp(r['mean_diff'])}, Holm {fmt_p(r['p_holm'])}"
                          for r in sig)
        return Finding(key, title, True,
                       f"Reproduced: n* < L in {len(below)} of {n_cells} cells, and training "
                       f"more blocks beats full freezing significantly in {len(sig)}: {cells}"
                       + caveat + ".", rows)
    return Finding(key, title, False,
                   f"Not reproduced: n* < L in {len(below)} of {n_cells} cells, but no gain over "
                   f"full freezing is significant (largest {best['cell']}: "
                   f"{pp(best['mean_diff'])}, Holm {fmt_p(best['p_holm'])}).", rows)


def _nstar_family(curves: dict, pairs: list[tuple[str, tuple, tuple]]) -> list[dict]:
    """Paired tests of per-seed n* at cell a minus at cell b, for (label, a, b)."""
    groups = [(label, {s: float(v) for s, v in seed_optimum(curves, *a).items()},
               {s: float(v) for s, v in seed_optimum(curves, *b).items()})
              for label, a, b in pairs]
    rows = paired_family(groups, ALPHA, label="comparison")
    for r, (label, a, b) in zip(rows, pairs):
        r["nstar_a"], r["nstar_b"] = optimum(curves, *a), optimum(curves, *b)
    return rows


def _size_pairs(curves: dict) -> list:
    s = curves["sizes"]
    return [(f"corr={lv}: n*(N={s[0]}) - n*(N={s[-1]})", (s[0], lv), (s[-1], lv))
            for lv in curves["levels"]] if len(s) > 1 else []


def _level_pairs(curves: dict) -> list:
    lv = curves["levels"]
    return [(f"N={n}: n*(corr={lv[-1]}) - n*(corr={lv[0]})", (n, lv[-1]), (n, lv[0]))
            for n in curves["sizes"]] if len(lv) > 1 else []


def _describe(rows: list[dict]) -> str:
    return "; ".join(f"{r['comparison']} = {r['nstar_a']} - {r['nstar_b']} (per seed "
                     f"{r['mean_diff']:+.2f}, Holm {fmt_p(r['p_holm'])}, Wilcoxon "
                     f"{fmt_p(r['p_wilcoxon'])})" for r in rows)


def changes(curves: dict) -> Finding:
    key, title = "nstar_changes", "(2) n* changes with N and with correlation"
    by_n = _nstar_family(curves, _size_pairs(curves))
    by_c = _nstar_family(curves, _level_pairs(curves))
    rows = by_n + by_c
    if not by_n:
        return Finding(key, title, None, "Not measured: needs two target sizes.", rows)
    if not _tested(rows):
        return Finding(key, title, None, "Not tested: one seed allows no paired test.", rows)
    sig_n = any(r["higher"] or r["lower"] for r in by_n)
    sig_c = any(r["higher"] or r["lower"] for r in by_c)
    if not by_c:
        ok = sig_n
        scope = "one correlation level (an image pair): only the N part is decided"
    else:
        ok = sig_n and sig_c
        scope = (f"with N: {'significant' if sig_n else 'not significant'}; with correlation: "
                 f"{'significant' if sig_c else 'not significant'}")
    verdict = "Reproduced" if ok else "Not reproduced"
    return Finding(key, title, ok, f"{verdict} ({scope}). {_describe(rows)}.", rows)


def _ordering(key: str, title: str, rows: list[dict], what: str) -> Finding:
    if not rows:
        return Finding(key, title, None, f"Not measured: needs two {what}.", rows)
    holds = [r for r in rows if r["nstar_a"] is not None and r["nstar_b"] is not None
             and r["nstar_a"] >= r["nstar_b"]]
    against = [r for r in rows if r["lower"]]
    strict = [r for r in rows if r["higher"]]
    if not _tested(rows):
        return Finding(key, title, None, f"Not tested (one seed); the mean-based n* satisfy "
                       f"it in {len(holds)} of {len(rows)}. {_describe(rows)}.", rows)
    moved = [r for r in holds if r["nstar_a"] > r["nstar_b"]]
    consistent = len(holds) == len(rows) and not against
    ok = consistent and bool(moved) and bool(strict)
    verdict = "Reproduced" if ok else "Not reproduced"
    if consistent and not moved:
        verdict += " (it holds only as equality: n* does not move, so the claim is not shown)"
    elif consistent and not strict:
        verdict += (" (the means point the claimed way, but no per-seed difference is "
                    "significant)")
    return Finding(key, title, ok,
                   f"{verdict}: holds (>=) in {len(holds)} of {len(rows)}, strictly by the "
                   f"means in {len(moved)}, strictly and "
                   f"significantly in {len(strict)}, significantly reversed in {len(against)}. "
                   f"{_describe(rows)}.", rows)


def findings(curves: dict, num_blocks: int) -> tuple[str, list[Finding], list[dict]]:
    """(the rule, the four findings, the per-cell gains)."""
    gain_rows = gains(curves, num_blocks)
    found = [not_optimal(curves, gain_rows, num_blocks), changes(curves),
             _ordering("small_n_deeper", "(3) n* at the smallest N >= n* at the largest N",
                       _nstar_family(curves, _size_pairs(curves)), "target sizes"),
             _ordering("high_corr_deeper",
                       "(4) At fixed N, n* at the highest correlation >= at the lowest",
                       _nstar_family(curves, _level_pairs(curves)), "correlation levels")]
    rule = (f"Each finding is decided by two-sided paired t-tests across seeds, Holm-corrected "
            f"over its family (alpha = {ALPHA}); n* = argmax over depths of the mean "
            "validation accuracy (ties: the deeper depth); test accuracy only reports.")
    return rule, found, gain_rows


def nstar_map(curves: dict) -> str:
    """"corr=0.99: N=20 -> 4, N=100 -> 1; corr=0.5: ..." from the validation n*."""
    return "; ".join(f"corr={lv}: " + ", ".join(f"N={n} -> {optimum(curves, n, lv)}"
                                               for n in curves["sizes"])
                     for lv in reversed(curves["levels"]))


def headline(curves: dict, found: list[Finding]) -> str:
    """The report's first line: whether this run shows the paper's central claim (finding
    2, n* changes with N and correlation), computed from ``found``, with the n* map."""
    f = next(f for f in found if f.key == "nstar_changes")
    moved = len({o["depth"] for o in curves["optimal"]}) > 1
    # n* the same in every cell shows no effect at all, whatever the paired tests could say
    # (with no spread they are "not tested"): that is a plain "not reproduced".
    word = {True: "Reproduced", False: "NOT reproduced",
            None: "Not decided" if moved else "NOT reproduced"}[f.reproduced]
    how = "" if f.reproduced or moved else " (n* is the same in every cell)"
    return (f"{word}: the optimal freeze depth n* changes with target size N and "
            f"correlation{how}. n* (chosen on validation): {nstar_map(curves)}.")
