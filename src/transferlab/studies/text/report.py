"""The text study's report.html: wording here, layout from ``report.html``."""

from __future__ import annotations

from transferlab.report import html as kit


def _fmt(v, digits=4):
    return "" if v is None else f"{v:.{digits}f}"


def write_report(path, result: dict, png: bytes) -> str:
    rows = []
    for regime in result["regimes"]:
        for cond, s in result["stats"].get(regime, {}).items():
            ci = s.get("ci")
            rows.append({"regime": regime, "condition": cond, "mean": _fmt(s["mean"]),
                         "ci": f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "not computed (n=1)",
                         "n": s["n"], "wall": _fmt(s["wall_s"], 1)})
    claims = []
    for f in result["findings"]:
        if not f["tests"]:
            claims.append(kit.paragraph(f"{f['claim']}: not tested (no shared units)."))
            continue
        trs = [{"regime": t["regime"], "n": t["n"], "diff": _fmt(t["mean_diff"]),
                "ci": f"[{_fmt(t['ci_low'])}, {_fmt(t['ci_high'])}]",
                "p": _fmt(t["p"], 3), "p_holm": _fmt(t["p_holm"], 3),
                "verdict": ("higher" if t["higher"] else "lower" if t["lower"]
                            else "no significant difference" if t["p"] is not None
                            else "not tested (n < 2)")} for t in f["tests"]]
        claims.append(kit.section(f"{f['claim']} ({f['a']} minus {f['b']})",
                                  kit.table(trs, left=["regime", "verdict"])))
    failed = result.get("failed") or {"n": 0, "of": 0, "by_condition": []}
    failures = kit.section("Failed trials", kit.paragraph(
        f"{failed['n']} of {failed['of']} trials failed or diverged; they are not counted "
        "in the statistics above."), kit.table(
            failed["by_condition"], ["regime", "condition", "n", "error"],
            left=["regime", "condition", "error"])) if failed["n"] else \
        kit.paragraph(f"All {failed['of']} trials finished.")
    cfg = result["config"]
    intro = (f"Source {cfg['source']} on {cfg['task']} (max_length {cfg['max_length']}): "
             "feature-based protocols (linear-probe on the pooled embedding, ELMo's layer-mix "
             "of every layer, both L-BFGS on cached features) against fine-tuning "
             "(freeze:n, finetune with lr_mult 1.0 and 0.1; AdamW, budget "
             f"{result['budget']}, {result['train']}). Accuracy on the official test split; "
             "wall time = feature extraction + training per trial on this machine. Paired "
             "tests over episodes (few-shot) or seeds (full), Holm within each claim.")
    html = kit.page("Feature-based vs fine-tuning on a sentence encoder", [
        kit.failures(result.get("trial_failures")),
        kit.paragraph(intro),
        kit.figure(png, "Left: test accuracy per regime. Right: wall time per trial."),
        kit.section("Accuracy and cost", kit.table(
            rows, ["regime", "condition", "mean", "ci", "n", "wall"],
            ["regime", "condition", "test acc", "95% CI", "n", "wall s"],
            left=["regime", "condition"])),
        kit.section("Findings", *claims),
        failures,
        kit.section("Settings", kit.kv_table(cfg)),
        kit.provenance_section(result.get("provenance", {})),
    ])
    return kit.write(path, html)
