"""``transferlab rank``: score candidate sources (or depths of one source) for a target task
with transferability estimators, from one frozen forward pass each; ``--verify`` also
fine-tunes every candidate and reports Kendall's tau between score and test accuracy."""

from __future__ import annotations

import argparse
import math
import time

from transferlab.cli._common import add_common, add_train_args, train_config_from_args
from transferlab.errors import UserError, bad_value


def register(sub) -> None:
    from transferlab.transferability import ESTIMATORS

    names = ", ".join(ESTIMATORS)
    p = sub.add_parser("rank", help="rank source models or depths for a target task",
                       description="Score candidates with transferability estimators (LogME, "
                                   "LEEP, NCE, H-score, regularised H-score, TransRate) on the "
                                   "task's train split, without fine-tuning.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sources", nargs="+", default=None, metavar="CKPT",
                   help="candidate source checkpoints (rank the models)")
    p.add_argument("--source", default=None, metavar="CKPT",
                   help="one source checkpoint (with --depths: rank its depths)")
    p.add_argument("--depths", default=None,
                   help="with --source: 'all' or a comma list of depths (block counts)")
    p.add_argument("--task", required=True, help="target task string, e.g. mnist:classes=5-9")
    p.add_argument("--metric", default="logme", help=f"one of {names}, or all")
    p.add_argument("--verify", action="store_true",
                   help="also fine-tune every candidate and report Kendall's tau and weighted "
                        "tau between score and test accuracy")
    p.add_argument("--protocol", default="finetune",
                   help="protocol of --verify for --sources (depths are verified with "
                        "freeze:n, n the depth)")
    add_common(p)
    add_train_args(p)
    p.set_defaults(func=run)


def _metrics(text: str, depths: bool) -> list[str]:
    from transferlab.transferability import ESTIMATORS, get_estimator

    if text == "all":
        # LEEP and NCE read the source head: they cannot tell depths apart
        return [k for k, e in ESTIMATORS.items() if not depths or e.reads == "features"]
    est = get_estimator(text)
    if depths and est.reads != "features":
        raise bad_value("--metric", text, "a feature estimator with --depths (logme, hscore, "
                        "reg_hscore, transrate)", "LEEP and NCE read the source head, "
                        "the same at every depth")
    return [text]


def _candidates(args, load) -> list[tuple[str, object, int | None, str]]:
    """(name, model, depth, verify protocol) for every candidate."""
    if bool(args.sources) == bool(args.source):
        raise UserError("pass exactly one of --sources CKPT [CKPT ...] (rank models) or "
                        "--source CKPT --depths all (rank depths)")
    if args.sources:
        if args.depths:
            raise bad_value("--depths", args.depths, "only with --source",
                            "rank the depths of one source with --source CKPT --depths all")
        from transferlab._paths import checkpoint_files, real

        if len({real(checkpoint_files(s)[0]) for s in args.sources}) < len(args.sources):
            raise bad_value("--sources", args.sources, "distinct checkpoints (a path or "
                            "link given twice counts once)", "drop the duplicate")
        return [(s, load(s), None, args.protocol) for s in args.sources]
    model = load(args.source)
    n = model.num_blocks
    if args.depths in (None, ""):
        return [(args.source, model, None, args.protocol)]
    if args.depths == "all":
        depths = list(range(1, n + 1))
    else:
        try:
            depths = [int(d) for d in args.depths.split(",")]
        except ValueError:
            raise bad_value("--depths", args.depths, "all or a comma list of integers",
                            "e.g. --depths 1,3,5") from None
        bad = [d for d in depths if not 1 <= d <= n]
        if bad or len(set(depths)) < len(depths):
            raise bad_value("--depths", args.depths, f"distinct depths in 1..{n} for this "
                            "model", "or pass --depths all")
    return [(f"depth {d} ({model.block_names[d - 1]})", model, d, f"freeze:{d}")
            for d in depths]


def _check_input(name: str, model, task) -> None:
    from transferlab.models.compat import check_runs_on

    check_runs_on(model, task.x_train, f"source {name!r}", str(task.spec))


def _taus(scores: list[float], accs: list[float]) -> dict:
    from scipy.stats import kendalltau, weightedtau

    if len(scores) < 2:
        return {"kendall_tau": None, "weighted_tau": None}
    kt, wt = kendalltau(scores, accs).statistic, weightedtau(scores, accs).statistic
    return {"kendall_tau": None if math.isnan(kt) else float(kt),
            "weighted_tau": None if math.isnan(wt) else float(wt)}


def run(args: argparse.Namespace) -> int:
    from transferlab.checkpoint import load_checkpoint
    from transferlab.cli import print_json
    from transferlab.data import make_task
    from transferlab.transferability import score_all

    metrics = _metrics(args.metric, bool(args.depths))
    cfg = train_config_from_args(args) if args.verify else None
    if args.verify:
        from transferlab.protocols import get_protocol
        get_protocol(args.protocol)  # fail fast, before any forward pass
    cands = _candidates(args, lambda p: load_checkpoint(p)[0])
    task = make_task(args.task, data_dir=args.data_dir, progress=not args.quiet)
    rows: list[dict] = []
    for name, model, depth, _ in ([cands[0]] if cands[0][2] is not None else cands):
        _check_input(name, model, task)
        if depth is not None:  # one pass through the blocks serves every depth
            got = score_all(model, task, metrics, [c[2] for c in cands])
            names = {c[2]: c[0] for c in cands}
            rows += [dict(r, candidate=names[r["depth"]]) for r in got]
        else:
            rows += [dict(r, candidate=name) for r in score_all(model, task, metrics)]
    result: dict = {"task": str(task.spec), "n_train": len(task.y_train),
                    "candidates": [c[0] for c in cands], "scores": {}}
    for m in metrics:
        mine = sorted((r for r in rows if r["metric"] == m), key=lambda r: -r["score"])
        result["scores"][m] = [{"candidate": r["candidate"], "depth": r["depth"],
                                "score": r["score"], "rank": i + 1,
                                "time_s": r["time_s"] + r["feature_time_s"],
                                "feature_time_s": r["feature_time_s"]}
                               for i, r in enumerate(mine)]
    for m, ranked in result["scores"].items():
        if ranked and not any(math.isfinite(r["score"]) for r in ranked):
            raise UserError(f"rank: every candidate's {m} score is not finite "
                            f"({', '.join(r['candidate'] for r in ranked)}): allowed is a "
                            "ranking with at least one finite score, so none is reported; "
                            "use more labelled examples or another --metric")
    if args.verify:
        result["verify"] = _verify(cands, task, cfg, args, result["scores"])
        from transferlab._chance import check_decision

        check_decision("rank --verify", result["verify"]["test_acc"], task.num_classes,
                       len(task.y_test), "test accuracy after fine-tuning",
                       "train longer (--epochs) or tune --lr")
    if args.json:
        print_json(result)
    else:
        _print_table(result)
    return 0


def _verify(cands, task, cfg, args, scores: dict) -> dict:
    from transferlab.api import transfer

    accs, times = {}, {}
    for name, model, _, protocol in cands:
        t0 = time.perf_counter()
        res = transfer(model, task, protocol, cfg, seed=args.seed, progress=not args.quiet)
        accs[name], times[name] = res.metrics["test_acc"], time.perf_counter() - t0
    out = {"protocols": {c[0]: c[3] for c in cands}, "test_acc": accs,
           "finetune_time_s": times, "tau": {}}
    for m, ranked in scores.items():
        out["tau"][m] = _taus([r["score"] for r in ranked], [accs[r["candidate"]]
                                                             for r in ranked])
    return out


def _print_table(result: dict) -> None:
    ver = result.get("verify")
    width = max(len(c) for c in result["candidates"])
    for m, ranked in result["scores"].items():
        print(f"{m} on {result['task']} (n_train={result['n_train']})")
        for r in ranked:
            line = f"  {r['rank']:>3}  {r['candidate']:<{width}}  {r['score']:>12.5f}  " \
                   f"{r['time_s']:7.2f}s"
            if ver:
                line += f"  test_acc={ver['test_acc'][r['candidate']]:.4f}"
            print(line)
        if ver:
            t = ver["tau"][m]
            fmt = lambda v: "n/a" if v is None else f"{v:+.3f}"  # noqa: E731
            print(f"  Kendall tau={fmt(t['kendall_tau'])}  weighted tau="
                  f"{fmt(t['weighted_tau'])}")
