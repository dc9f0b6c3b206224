"""The ensembles study's report.html (wording here, layout from ``report.html``)."""

from __future__ import annotations

from pathlib import Path

from transferlab.report import html as kit

COLUMNS = ["strategy", "compute", "accuracy", "nll", "ece", "brier", "disagreement",
           "member_accuracy", "wall_time_s", "epochs", "n"]


def _fmt(row: dict) -> dict:
    out = {}
    for k in COLUMNS:
        v = row.get(k)
        if isinstance(v, float):
            sd = row.get(f"{k}_std")
            out[k] = f"{v:.4f}" + (f" ± {sd:.4f}" if isinstance(sd, float) else "") \
                if k != "wall_time_s" else f"{v:.2f}"
        else:
            out[k] = "" if v is None else v
    return out


def write_report(path: str, result: dict, images: list[tuple[str, str]], title: str) -> str:
    s = result["settings"]
    verdict = {True: '<span class="yes">holds</span>', False: '<span class="no">does not '
               'hold</span>', None: '<span class="na">not decided</span>'}
    items = [f"<b>{kit.esc(f['title'])}</b>: {verdict[f['reproduced']]}. {kit.esc(f['text'])}"
             for f in result["findings"]]
    adds = [{"seed": k, **{c: (f"{v:.3f}" if isinstance(v, float) else v)
                           for c, v in a.items() if c in ("add_time_s", "full_time_s",
                                                          "time_ratio", "member_test_acc",
                                                          "full_member_test_acc")}}
            for k, a in result["additions"].items()]
    parts = [
        kit.paragraph(f"Shashkov et al. (2022), 'Transfer learning for ensembles' (arXiv "
                      f"2206.13116): {s['members']} members pretrained on {s['source']} "
                      f"(seeds 0..{s['members'] - 1}) are transferred to {s['target']} by "
                      "each strategy, over "
                      f"{s['seeds']} replicate(s). Metrics are those of the ensemble's mean "
                      "prediction on the target's test split; time is the serial compute of "
                      "each strategy's trials."),
        kit.section("Findings", kit.paragraph(result["findings_rule"]),
                    kit.bullets(items, raw=True)),
        kit.section("Strategies (mean ± std over replicates)",
                    kit.table([_fmt(r) for r in result["strategies"]], COLUMNS,
                              left=("strategy", "compute"))),
        kit.section("Adding a member (time vs fine-tuning it fully)",
                    kit.table(adds) if adds else kit.paragraph("not run")),
    ]
    for png, caption in images:
        parts.append(kit.section(caption.split(":")[0],
                                 kit.figure(Path(png).read_bytes(), caption)))
    parts += [kit.section("Settings", kit.kv_table(s)),
              kit.provenance_section(result["provenance"])]
    return kit.write(path, kit.page(title, parts))
