"""The decisions scoreboard's tables (``benchmarks/bench_decisions.py score``) for
docs/advise.md and docs/depth.md; registered in ``docs_tables.TABLES``."""

from __future__ import annotations

from docs_tables import load, source_line, table

CONSTANTS = ("always linear-probe", "always finetune lr_mult 0.1", "always finetune lr_mult 1",
             "always scratch", "always freeze at half depth", "always freeze:0")


def _n_within(rows: list[dict], rule: str, points: float = 1.0) -> str:
    rs = [r for r in rows if r["rule"] == rule and r["regret"] is not None]
    return f"{sum(r['regret'] <= points / 100 + 1e-12 for r in rs)}/{len(rs)}"


def _rules_rows(rows: list[dict], s: dict) -> list[list]:
    order = ["advise", "advise --verify", "advise (guide table, no cases)", "depth",
             "LogME's best depth", *CONSTANTS]
    out = []
    for rule in [o for o in order if o in s]:
        x = s[rule]
        out.append([rule, x["cases"], f"{100 * x['mean_regret']:.2f}", _n_within(rows, rule),
                    _n_within(rows, rule, 0.5), f"{x['mean_cost_ratio']:.2f}x"])
    return out


HEADER = ["rule", "cases answered", "mean regret (points)", "within 1 point",
          "within 0.5 point", "cost"]


def rules_table(rel: str) -> str:
    """Every rule on the held-out cases: mean regret, within 1 point, cost; then every
    rule on the cases advise answered (like for like)."""
    d = load(rel)
    rows = [r for res in d["results"] for r in res["rows"]]
    answered = [r for res in d["results"] if not res["advise_refused"] for r in res["rows"]]
    s, sa = d["summary"], d["summary_where_advise_answered"]
    best = min((sa[c]["mean_regret"], c) for c in CONSTANTS if c in sa)
    refused = d["advise_refused"]
    return source_line(rel) + (
        f"{d['n_heldout']} held-out cases ({d['tier']} tier), every candidate over "
        f"{d['seeds']} seeds; regret in points of test accuracy against the oracle (the "
        "candidate of best mean test accuracy, for scoring only); cost: CPU seconds as a "
        "multiple of training every candidate once. A rule that refuses a case (advise and "
        "depth do when no candidate's validation accuracy beats chance's bound) is not "
        "scored there.\n\n") + table(HEADER, _rules_rows(rows, s)) + (
        f"\nOn the {d['n_heldout'] - len(refused)} cases advise answered (it refused "
        f"{', '.join(refused) or 'none'}); best constant rule there: {best[1]} "
        f"({100 * best[0]:.2f} points):\n\n") + table(HEADER, _rules_rows(answered, sa))


def cases_table(rel: str) -> str:
    """Per held-out case: the oracle and the advisor's picks."""
    d = load(rel)
    out = []
    for res in d["results"]:
        by = {r["rule"]: r for r in res["rows"]}
        cell = lambda rule: (f"{by[rule]['pick']} ({100 * by[rule]['regret']:.1f})"  # noqa
                             if rule in by and by[rule]["regret"] is not None else "refused")
        o = by["always scratch"]  # every row names the oracle; a constant rule always has one
        out.append([res["case"], f"{o['oracle']} ({o['oracle_acc']:.3f})", cell("advise"),
                    cell("advise --verify"), cell("depth"), cell("always linear-probe"),
                    cell("always finetune lr_mult 1")])
    return source_line(rel) + "Pick (regret in points) per held-out case.\n\n" + table(
        ["case", "oracle (test acc)", "advise", "advise --verify", "depth",
         "always linear-probe", "always finetune lr_mult 1"], out)


def depth_table(rel: str) -> str:
    """``depth`` where the oracle depth is not 0."""
    d = load(rel)
    out = []
    for res in d["results"]:
        dd = res.get("depth")
        if dd is None:
            continue
        by = {r["rule"]: r for r in dd["rows"]}
        reg = lambda rule: f"{100 * by[rule]['regret']:.1f}"  # noqa: E731
        out.append([res["case"], dd["oracle"], "no" if dd["oracle_is_depth_0"] else "yes",
                    f"{by['depth']['pick']} ({reg('depth')})", reg("always freeze:0"),
                    reg("always linear-probe"), f"{100 * dd['search_share']:.0f}%"])
    w = d["depth_where_it_matters"]
    s = w["summary"]
    head = (f"Where the oracle depth is not 0 ({w['cases']} cases): mean regret depth "
            f"{100 * s['depth']['mean_regret']:.2f}, always freeze:0 "
            f"{100 * s['always freeze:0']['mean_regret']:.2f}, always linear-probe "
            f"{100 * s['always linear-probe']['mean_regret']:.2f} points; the search took "
            f"{100 * s['search_share']:.0f}% of the exhaustive sweep's CPU time.\n\n"
            if w["cases"] else "No held-out case has an oracle depth above 0.\n\n")
    return source_line(rel) + head + table(
        ["case", "oracle", "depth matters", "depth's pick (regret)", "always freeze:0",
         "always linear-probe", "search / exhaustive"], out)
