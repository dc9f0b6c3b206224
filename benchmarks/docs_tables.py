"""Every number in README.md and docs/*.md from a committed results file.

Two mechanisms, both checked by ``tests/test_docs_numbers.py``:

* **generated regions**: a table (or a line) between ``<!-- table:NAME -->`` and
  ``<!-- /table -->`` is written by ``TABLES[NAME]`` from the JSON files in
  ``benchmarks/results/`` (each region starts by naming its file). ``make docs-tables``
  (``python benchmarks/docs_tables.py``) rewrites them; ``--check`` exits 1 when one is stale.
* **references in prose**: a number followed by ``<!-- from: FILE#a/b/0/c -->`` is the value
  at that key path of that JSON file, shown rounded to the digits written (``x100``
  after the path: shown as a percentage: ``<!-- from: FILE#a/b x100 -->``). The number
  checked is the last one before the marker on its line.

    python benchmarks/docs_tables.py [--check]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "benchmarks/results"
REGION = re.compile(r"(<!-- table:([\w.-]+) -->\n)(.*?)(<!-- /table -->)", re.S)
FROM = re.compile(r"<!-- from: ([^#\s]+)#(\S+)(?: (x100))? -->")
NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?")


# ---------------------------------------------------------------- reading the files
@lru_cache(maxsize=None)
def load(rel: str) -> dict:
    return json.loads((ROOT / rel).read_text())


def at(data, path: str):
    """The value at ``a/b/0/c`` in nested dicts and lists."""
    for part in path.split("/"):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def commit(data: dict) -> str:
    c = (data.get("provenance") or {}).get("commit") or ""
    return f", commit {c[:7]}" if c else ""


def source_line(*rels: str) -> str:
    names = ", ".join(f"`{r}`" for r in rels)
    return f"From {names}{commit(load(rels[0]))}; written by `benchmarks/docs_tables.py`.\n\n"


def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def f(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) \
        else f"{x:.{digits}f}"


def pct(x, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


# ---------------------------------------------------------------- defrost
def defrost(rel: str) -> str:
    """n* per cell (validation pick and test argmax) with the test accuracy at n*."""
    d = load(rel)
    by_val = "optimal_by_test" in d  # files from before the validation pick have optimal
    val = {(o["target_size"], o["correlation"]): o for o in (
        d["optimal"] if by_val else d.get("optimal_by_val", []))}
    test = {(o["target_size"], o["correlation"]): o for o in (
        d["optimal_by_test"] if by_val else d["optimal"])}
    s = d["settings"]
    head = source_line(rel)
    if d.get("headline"):
        head += f"**{d['headline']}**\n\n"
    knob = f", knob {s['knob']}" if s.get("knob") else ""
    head += f"{s['kind']}{knob}, {s['seeds']} seeds, {s['trials']} trials, budget {s['budget']}.\n\n"
    rows = []
    for (n, lv), t in test.items():
        v = val.get((n, lv), {})
        rows.append([n, lv, v.get("depth", "–"),
                     pct(v.get("mean") if by_val else v.get("test_mean")),
                     t["depth"], pct(t["mean"])])
    found = "; ".join(f"{x['title']}: {'reproduced' if x['reproduced'] else 'not reproduced' if x['reproduced'] is False else 'not decided'}"
                      for x in d["findings"])
    return head + table(["N", "correlation (images: target)", "n* (validation)", "test acc. at n* %",
                         "test-argmax depth", "its test acc. %"], rows) + \
        f"\nFindings as the file states them: {found}.\n"


# ---------------------------------------------------------------- few-shot
def fewshot(rel: str) -> str:
    d = load(rel)
    shots = d["settings"]["shots"]
    cells = {(c["protocol"], c["shots"]): c for c in d["cells"]}
    rows = []
    for p in d["settings"]["protocols"]:
        row = [f"`{p}`"]
        for k in shots:
            c = cells.get((p, k))
            row.append("–" if not c else
                       f"{pct(c['mean'])} ± {pct((c['ci_high'] - c['ci_low']) / 2)} ({c['n']})"
                       if c.get("ci_high") is not None else f"{pct(c['mean'])} ({c['n']})")
        rows.append(row)
    s = d["settings"]
    head = source_line(rel) + (
        f"{s['source_name']} -> {s['target_name']}, {s['ways']}-way, {s['episodes']} "
        f"episodes, budget {s['budget']}; test accuracy %, mean ± 95% CI half-width "
        "(episodes).\n\n")
    return head + table(["protocol"] + [f"k = {k}" for k in shots], rows)


BN_VS_CONV = (("bn-only", "conv-only"), ("bn-only-frozen-stats", "conv-only-frozen-stats"),
              ("bn-only", "finetune"), ("bn-only-frozen-stats", "finetune-frozen-stats"))


def fewshot_bn_vs_conv(rel: str) -> str:
    """BN tuning against conv tuning, per k: the study's paired tests (Holm within k)."""
    d = load(rel)
    pw = {(r["shots"], r["a"], r["b"]): r for r in d["pairwise"]}
    rows = []
    for k in d["settings"]["shots"]:
        for a, b in BN_VS_CONV:
            r, sign = pw.get((k, a, b)), 1
            if r is None and (k, b, a) in pw:
                r, sign = pw[(k, b, a)], -1
            if r is None:
                continue
            lo, hi = sorted((sign * r["ci_low"], sign * r["ci_high"]))
            verdict = ("not tested" if r.get("p_holm") is None else
                       f"{a} higher" if (r["higher"] if sign > 0 else r["lower"]) else
                       f"{b} higher" if (r["lower"] if sign > 0 else r["higher"]) else
                       "no significant difference")
            p = "–" if r.get("p_holm") is None else f"{r['p_holm']:.3g}"
            rows.append([k, f"`{a}` − `{b}`", f"{100 * sign * r['mean_diff']:+.1f}",
                         f"[{100 * lo:+.1f}, {100 * hi:+.1f}]", r["n"], p, verdict])
    return source_line(rel) + "Paired over episodes; points of test accuracy; Holm-corrected " \
        "p within each k.\n\n" + table(
            ["k", "comparison", "mean difference", "95% CI", "n", "p (Holm)", "verdict"], rows)


# ---------------------------------------------------------------- yosinski
def yosinski(rel: str) -> str:
    """Test accuracy per condition and depth n, then each finding as the file states it."""
    d = load(rel)
    conds = d["conditions"]
    depths = d["depths"]
    rows = []
    for name, c in conds.items():
        by_n = dict(zip(c["depth"], c["mean"]))
        rows.append([name] + [pct(by_n.get(n)) for n in depths])
    s = d["settings"]
    head = source_line(rel) + (
        f"{s['dataset_name']}, {s['split']} split, split seeds {s['split_seeds']}, "
        f"{s['seeds']} seeds, budget {s['budget']}, {s['trials']} trials; mean test "
        "accuracy % over the (split seed, seed) units.\n\n")
    found = "\n".join(f"* **{x['title']}**: {x['text']}" for x in d["findings"])
    return head + table(["condition"] + [f"n = {n}" for n in depths], rows) + \
        f"\n{found}\n"


# ---------------------------------------------------------------- ensembles
def ensembles(*rels: str) -> str:
    rows = []
    for rel in rels:
        d = load(rel)
        a = d["strategies"]["independent"]
        for name, r in d["strategies"].items():
            rows.append([d["pair"], f"`{name}`", f(r["accuracy"], 4),
                         f"{100 * (r['accuracy'] - a['accuracy']):+.1f}", f(r["nll"]),
                         f"{100 * (r['nll'] / a['nll'] - 1):+.1f}%", f(r["disagreement"]),
                         f(r["compute_s"] / a["compute_s"], 2), r["epochs"]])
    return source_line(*rels) + "Accuracy, NLL and disagreement are deterministic; the " \
        "compute ratio (sum of the trials' training time over independent's) is " \
        "machine-load dependent.\n\n" + table(
            ["pair", "strategy", "accuracy", "vs independent (pts)", "NLL", "NLL vs indep.",
             "disagreement", "compute x", "epochs"], rows)


# ---------------------------------------------------------------- benchmarks
def _transferability(rel: str) -> str:
    s = load(rel)["summary"]
    taus = ", ".join(f"{k} {v:.2f}" for k, v in sorted(s["mean_kendall_tau"].items(),
                                                         key=lambda kv: -kv[1]))
    leep = s["score_per_estimator_s"]["leep"]
    return (f"mean Kendall tau {taus}; scoring the zoo with LEEP = "
            f"{100 * leep / s['finetune_train_s']:.1f}% of fine-tuning's *training* time "
            f"({leep:.2f} s vs {s['finetune_train_s']:.1f} s; "
            f"{100 * leep / s['finetune_wall_s']:.1f}% of its wall time, evaluation "
            "included)")


def benchmarks() -> str:
    r = RESULTS
    ds = load(f"{r}/depth_sweep_cpu.json")
    lp = load(f"{r}/linear_probe.json")
    ad = load(f"{r}/advise_idle.json")
    fs = load(f"{r}/fewshot_cpu_idle.json")
    ck = load(f"{r}/cka.json")
    tx = load(f"{r}/text.json")
    dsr = load(f"{r}/depth_search.json")
    tw = load(f"{r}/transferability_warm.json")
    dq = load(f"{r}/decisions_quick.json")
    dqa = dq["summary_where_advise_answered"]
    rows = [
        ["`bench_depth_sweep.py`", "all-depth `freeze:n` sweep vs a plain per-depth loop "
         f"({ds['train_examples']} examples, {ds['epochs']} epochs)",
         f"{ds['speedup']:.2f}x ({ds['transferlab_total_s']:.1f} s vs "
         f"{ds['baseline_total_s']:.1f} s)", f"`{r}/depth_sweep_cpu.json`"],
        ["`bench_linear_probe.py`", "`linear-probe` (L-BFGS) vs 10 epochs of an SGD head, "
         f"MNIST 5-9, {lp['n_train']} examples",
         f"{lp['speedup']:.1f}x; accuracy {lp['linear_probe']['test_acc']:.3f} vs "
         f"{lp['sgd_head_10_epochs']['test_acc']:.3f}", f"`{r}/linear_probe.json`"],
        ["`bench_transferability.py`", "six estimators ranking a 7-model zoo vs fine-tuning "
         "each", _transferability(f"{r}/transferability_warm.json"),
         f"`{r}/transferability_warm.json`"],
        ["same, LogME timing", "LogME on 10,000 x 2,048 features vs a naive per-class "
         "eigendecomposition", f"{tw['logme_speed']['logme_s_best']:.2f} s vs "
         f"{tw['logme_speed']['naive_per_class_s']:.1f} s", f"`{r}/transferability_warm.json`"],
        ["`bench_depth_search.py`", "`transferlab depth` vs the exhaustive sweep, "
         f"{len(dsr['cases'])} cases", f"choice within tolerance in {dsr['cases_choice_ok']} "
         f"of {len(dsr['cases'])}; all goals met in {dsr['cases_met']}",
         f"`{r}/depth_search.json`"],
        ["`bench_advise.py`", "`transferlab advise` on MNIST 5-9; `--verify`'s race vs "
         "training every candidate", f"advise {ad['advise_full']['wall_s']:.1f} s; race = "
         f"{100 * ad['race']['ratio_trial_time']:.0f}% of every candidate's trial time",
         f"`{r}/advise_idle.json`"],
        ["`bench_decisions.py`", "advise, advise --verify, depth and LogME vs every constant "
         f"rule on {dq['n_heldout']} held-out transfer cases (EfficientNet-Lite0, converged "
         "convnets, synthetic pairs)", f"mean regret advise {100 * dqa['advise']['mean_regret']:.2f}"
         f", --verify {100 * dqa['advise --verify']['mean_regret']:.2f}, best constant "
         f"{min(100 * v['mean_regret'] for k, v in dqa.items() if k.startswith('always')):.2f}"
         " points (on the cases advise answered)", f"`{r}/decisions_quick.json`"],
        ["`bench_fewshot.py`", "episode engine (vmap) vs a plain per-episode loop, "
         f"k = {fs['shots']}, {fs['episodes']} episodes", f"{fs['speedup']:.2f}x (the engine "
         f"is {'faster' if fs['speedup'] > 1 else 'slower'}); max accuracy difference "
         f"{fs['max_abs_acc_diff']:.4f}", f"`{r}/fewshot_cpu_idle.json`"],
        ["`bench_ensemble.py`", "`shift` variants vs `independent` (table in "
         "docs/ensembles.md)", "see docs/ensembles.md",
         f"`{r}/ensemble_cifar10_variants.json`, `{r}/ensemble_mnist_kmnist_variants.json`"],
        ["`bench_cka.py`", "linear CKA on 10,000 x 2,048 activations",
         f"{ck['full_batch_float32']['best_s']:.2f} s float32, "
         f"{ck['full_batch']['best_s']:.2f} s float64", f"`{r}/cka.json`"],
        ["`bench_text.py`", "MiniLM embeddings of 1,000 queries vs sentence-transformers; "
         "a linear probe on 20 per class vs scikit-learn's logistic regression",
         f"cosine >= {tx['encode']['cosine_min']:.7f}, throughput "
         f"{tx['encode']['throughput_ratio']:.2f}x; accuracy {tx['classify']['ours_acc']:.3f} "
         f"vs {tx['classify']['st_acc']:.3f}, {tx['classify']['speedup']:.2f}x",
         f"`{r}/text.json`"],
    ]
    return ("Written by `benchmarks/docs_tables.py` from the files named in each row; each "
            "file holds its config, versions, commit and machine load. Timings were taken on "
            "a 2-core CPU; the lead re-times them alone before a release.\n\n"
            + table(["benchmark", "compared", "result", "file"], rows))


def text_study(rel: str) -> str:
    """Mean test accuracy [95% CI] per protocol and regime of the text study."""
    d = load(rel)
    regimes = d["regimes"]
    protos = list(d["stats"][regimes[0]])
    rows = []
    for p in protos:
        row = [f"`{p}`"]
        for r in regimes:
            c = d["stats"][r].get(p)
            row.append("–" if not c else f"{c['mean']:.3f} [{c['ci'][0]:.3f}, "
                       f"{c['ci'][1]:.3f}] ({c['n']})" if c.get("ci") else f"{c['mean']:.3f}")
        rows.append(row)
    return source_line(rel) + "Mean test accuracy [95% t-interval] (episodes).\n\n" + \
        table(["protocol"] + regimes, rows)


def depth_search(rel: str) -> str:
    d = load(rel)
    rows = [[c["case"], c["chosen_depth"], c["best_depth"], f"{c['gap_points']:.2f}",
             f"{c['tolerance_points']:.2f}", f"{c['time_ratio']:.2f}",
             "yes" if c["goal_met"] else "no"] for c in d["cases"]]
    return source_line(rel) + f"Goal: {d['goal']}.\n\n" + table(
        ["case", "chosen n", "best n (test)", "gap (points)", "tolerance (points)",
         "time / exhaustive", "goal met"], rows)


def advise_bench(rel: str) -> str:
    d = load(rel)
    a, r = d["advise_full"], d["race"]
    return source_line(rel) + (
        f"`advise` on {a['task']} ({a['n_train']} training examples): {a['wall_s']:.1f} s, "
        f"recommendation {a['recommendation']} ({a['size']}, {a['similarity']}). "
        f"`--verify`'s race on {r['task']}: {100 * r['ratio_trial_time']:.0f}% of the "
        f"trial time of training every candidate (goal 20%: "
        f"{'met' if r['goal_20pct_met'] else 'not met'}); winner {r['race_winner']}.\n")


def _decisions(kind: str):
    if str(ROOT / "benchmarks") not in sys.path:  # loaded by path in the tests
        sys.path.insert(0, str(ROOT / "benchmarks"))
    import docs_tables_decisions as dt

    rel = f"{RESULTS}/decisions_quick.json"
    return {"rules": dt.rules_table, "cases": dt.cases_table, "depth": dt.depth_table}[kind](rel)


TABLES = {
    "decisions-rules": lambda: _decisions("rules"),
    "decisions-cases": lambda: _decisions("cases"),
    "decisions-depth": lambda: _decisions("depth"),
    "transferability": lambda: source_line(f"{RESULTS}/transferability_warm.json")
    + _transferability(f"{RESULTS}/transferability_warm.json") + ".\n",
    "text-study": lambda: text_study(f"{RESULTS}/text_study_banking77/results.json"),
    "depth-search": lambda: depth_search(f"{RESULTS}/depth_search.json"),
    "advise-bench": lambda: advise_bench(f"{RESULTS}/advise_idle.json"),
    "benchmarks": benchmarks,
    "defrost-default": lambda: defrost(f"{RESULTS}/defrost_synthetic_default_quick.json"),
    "defrost-both": lambda: defrost(f"{RESULTS}/defrost_synthetic_both_quick.json"),
    "defrost-eta": lambda: defrost(f"{RESULTS}/defrost_synthetic_eta_quick.json"),
    "defrost-q": lambda: defrost(f"{RESULTS}/defrost_synthetic_q_quick.json"),
    "defrost-mnist-kmnist": lambda: defrost(f"{RESULTS}/defrost_mnist_kmnist_quick.json"),
    "defrost-mnist": lambda: defrost(f"{RESULTS}/defrost_mnist04_59_quick_5seeds.json"),
    "defrost-cifar": lambda: defrost(f"{RESULTS}/defrost_cifar_animals_vehicles_quick_6seeds.json"),
    "yosinski-digits": lambda: yosinski(f"{RESULTS}/yosinski_digits_quick/curves.json"),
    "fewshot-mnist-kmnist": lambda: fewshot(f"{RESULTS}/fewshot_mnist_kmnist/fewshot.json"),
    "fewshot-effnet-cifar10": lambda: fewshot(f"{RESULTS}/fewshot_effnet_cifar10/fewshot.json"),
    "fewshot-effnet-bn-vs-conv": lambda: fewshot_bn_vs_conv(
        f"{RESULTS}/fewshot_effnet_cifar10/fewshot.json"),
    "ensemble-variants": lambda: ensembles(f"{RESULTS}/ensemble_cifar10_variants.json",
                                           f"{RESULTS}/ensemble_mnist_kmnist_variants.json"),
}


# ---------------------------------------------------------------- rewriting and checking
def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render(text: str) -> str:
    """``text`` with every generated region rewritten (an unknown NAME raises KeyError)."""
    def one(m: re.Match) -> str:
        return m.group(1) + TABLES[m.group(2)]() + m.group(4)
    return REGION.sub(one, text)


def check_refs(text: str) -> list[str]:
    """Problems with the ``<!-- from: -->`` references of ``text`` (empty: all agree)."""
    bad = []
    for line in text.splitlines():
        for m in FROM.finditer(line):
            shown = NUMBER.findall(line[:m.start()])
            where = f"{m.group(1)}#{m.group(2)}"
            if not shown:
                bad.append(f"no number before the reference to {where}")
                continue
            try:
                value = float(at(load(m.group(1)), m.group(2)))
            except (FileNotFoundError, KeyError, IndexError, ValueError, TypeError) as exc:
                bad.append(f"{where}: {type(exc).__name__} {exc}")
                continue
            text_num = shown[-1].replace(",", "").replace("−", "-")
            digits = len(text_num.split(".")[1]) if "." in text_num else 0
            value *= 100 if m.group(3) else 1
            if abs(float(text_num) - value) > 0.5 * 10 ** -digits + 1e-9:
                bad.append(f"{where}: the text says {text_num}, the file {value:.{digits + 2}f}")
    return bad


# A measured-looking number: three or more decimals, or a decimal number with a unit of
# time, ratio or share ("1.53%", "0.47x", "2.8 s"). Settings (0.99, 10%, 5 seeds), goals
# (after <, <=, >=, ≤, ≥), arXiv ids and confidence levels are not measurements.
MEASURE = re.compile(r"(?<![\w.<>=≤≥/-])(?<![<>=≤≥] )(?<!arXiv )"
                     r"(\d+\.\d{3,}|\d+\.\d+(?:x\b|\s?(?:%|s\b|ms\b|pts?\b|points\b|pp\b)))")
FENCE = re.compile(r"```.*?```", re.S)
CODE = re.compile(r"`[^`\n]*`")
HISTORY = re.compile(r"^## History\b.*", re.S | re.M)


CHECKED_BY = re.compile(r"<!-- checked-by: (\S+) -->\n.*?<!-- /checked-by -->", re.S)


def unsourced(text: str) -> list[str]:
    """Measured-looking numbers of ``text`` that no generated region or ``from`` reference
    backs (code, inline code, a final ``## History`` section and known answers between
    ``<!-- checked-by: TEST_FILE -->`` and ``<!-- /checked-by -->`` are not checked)."""
    body = HISTORY.sub("", CHECKED_BY.sub("", REGION.sub("", FENCE.sub("", text))))
    out = []
    for line in body.splitlines():
        line = FROM.sub("", re.sub(r"\S+\s?(?=<!-- from:)", "", CODE.sub("", line)))
        line = re.sub(r"<!--.*?-->", "", line)
        out += [f"{m.group(1)!r} in: {line.strip()[:100]}" for m in MEASURE.finditer(line)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 if a region is stale or a reference wrong")
    args = ap.parse_args(argv)
    status = 0
    for path in doc_files():
        text = path.read_text()
        new = render(text)
        rel = path.relative_to(ROOT)
        for problem in check_refs(new):
            print(f"{rel}: {problem}")
            status = 1
        if new != text:
            if args.check:
                print(f"{rel}: generated tables are stale; run make docs-tables")
                status = 1
            else:
                path.write_text(new)
                print(f"{rel}: tables rewritten")
    return status


if __name__ == "__main__":
    sys.exit(main())
