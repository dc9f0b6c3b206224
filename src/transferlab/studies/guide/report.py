"""The guide study's report.html (wording here; layout from ``report.html``)."""

from __future__ import annotations

from transferlab.report import html as kit


def _f(x, nd: int = 4) -> str:
    return "" if x is None else f"{x:.{nd}f}"


def _regret_rows(table: list[dict]) -> list[dict]:
    return [{"case": r["case"], "k": r["k"], "retained": _f(r["retained"], 3),
             "best": f"{r['best']} ({_f(r['best_acc'])})",
             "advised": f"{r['advisor']} ({_f(r['advisor_acc'])})",
             "regret": _f(r["advisor_regret"]),
             "guide": f"{r['guide']} ({_f(r['guide_acc'])})",
             "guide regret": _f(r["guide_regret"]),
             "always finetune": _f(r["always_finetune_acc"]),
             "finetune regret": _f(r["always_finetune_regret"])} for r in table]


def _summary_rows(s: dict) -> list[dict]:
    return [{"rule": k, "mean regret": _f(v["mean_regret"]),
             "within 1 point": _f(v["within_1pt"], 2), "cases": v["n"]} for k, v in s.items()]


def write_report(path: str, result: dict, images: list[tuple[bytes, str]]) -> str:
    parts = [kit.failures(result.get("trial_failures"))]
    if result.get("grid"):
        parts.append(kit.section(
            "The 2 x 2 grid (fit cases)",
            kit.paragraph("For each scenario: the winner (the protocol with the best mean "
                          "VALIDATION accuracy; test accuracy never chooses it), the guide's "
                          "advice and transferlab's advice (its thresholds were fitted on "
                          "these four cases' validation accuracies: in-sample), and the test "
                          "accuracy each gives."),
            kit.table([{k: (_f(v) if isinstance(v, float) else v) for k, v in r.items()
                        if k != "guide_says"} for r in result["grid"]],
                      left=["scenario", "case", "winner", "guide", "transferlab"]),
            *[kit.figure(png, cap) for png, cap in images]))
        f = result["findings"]
        parts.append(kit.section(
            "Findings (paired t-tests over seeds, Holm per family)",
            kit.paragraph("Measured winner minus the guide's advice, where they differ:"),
            kit.table([{k: (_f(v) if isinstance(v, float) else v) for k, v in r.items()}
                       for r in f["winner_vs_guide"]], left=["scenario"]),
            kit.paragraph("Fine-tuning with lr_mult 0.1 minus lr_mult 1.0 (the guide's "
                          "'smaller learning rate'):"),
            kit.table([{k: (_f(v) if isinstance(v, float) else v) for k, v in r.items()}
                       for r in f["lr_mult_0.1_vs_1"]], left=["case"])))
    if result.get("heldout_table"):
        parts.append(kit.section(
            "Held-out evaluation (regret = best mean test accuracy - the rule's; the best "
            "by test is the oracle, used for scoring only)",
            kit.table(_summary_rows(result["heldout_summary"]), left=["rule"]),
            kit.table(_regret_rows(result["heldout_table"]),
                      left=["case", "best", "advised", "guide"])))
    parts.append(kit.section("Calibration", kit.kv_table(
        {"thresholds": result["thresholds"], "fit": result["calibration"],
         "fit-case summary": result.get("fit_summary")})))
    for c in result["cases"]:
        rows = sorted(({"candidate": k, "mean": _f(v["mean"]), "ci": f"[{_f(v['ci_low'])}, "
                        f"{_f(v['ci_high'])}]", "val": _f(v["val_mean"]), "n": v["n"],
                        "time_s": _f(v["time_s"], 1)} for k, v in c["cells"].items()),
                      key=lambda r: r["mean"], reverse=True)
        parts.append(kit.details(
            f"{c['name']} ({c['role']}): {c['source_task']} -> {c['target_task']}, k={c['k']}, "
            f"retained={c['retained']:.3f}, best probe depth {c['best_depth']}",
            kit.table(rows, left=["candidate"])))
    parts.append(kit.section("Settings", kit.kv_table(result["settings"])))
    parts.append(kit.provenance_section(result["provenance"]))
    return kit.write(path, kit.page("The practitioner's guide, measured", parts))
