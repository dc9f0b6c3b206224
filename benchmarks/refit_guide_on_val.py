"""Refit the advisor's thresholds on VALIDATION accuracies from a committed guide study run.

The defaults in ``advise/rules.py: Thresholds`` were first fitted on the guide study's mean
test accuracies. This script reads a committed ``guide.json`` (its per-candidate cells carry
``val_mean`` beside ``mean``), refits with ``calibrate.fit`` (validation only) and scores the
held-out cases by test regret (the oracle for scoring only), for both the old (test-fitted)
and the new thresholds. No training runs: seconds.

    python benchmarks/refit_guide_on_val.py [benchmarks/results/guide_mnist_quick.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from transferlab.advise import calibrate
from transferlab.advise.rules import Thresholds
from transferlab.provenance import provenance

HERE = Path(__file__).parent
SRC = HERE / "results" / "guide_mnist_quick.json"
OUT = HERE / "results" / "guide_mnist_quick_valfit.json"


def main(src: Path = SRC, out: Path = OUT) -> dict:
    data = json.loads(src.read_text())
    for c in data["cases"]:
        c["val_acc"] = {k: v["val_mean"] for k, v in c["cells"].items()
                        if v.get("val_mean") is not None}
    fit = [c for c in data["cases"] if c["role"] == "fit"]
    held = [c for c in data["cases"] if c["role"] == "heldout"]
    th, info = calibrate.fit(fit)
    old = Thresholds(**data["thresholds"])
    result = {"source": str(src), "source_commit": data["provenance"].get("commit"),
              "fit_on": "val_acc (mean validation accuracy per candidate)",
              "thresholds_val": th.to_dict(), "fit": info,
              "thresholds_test_fitted": old.to_dict(),
              "heldout_summary_val_fitted": calibrate.summary(calibrate.evaluate(held, th)),
              "heldout_summary_test_fitted": calibrate.summary(calibrate.evaluate(held, old)),
              "n_fit_cases": len(fit), "n_heldout_cases": len(held),
              "provenance": provenance()}
    out.write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    r = main(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC)
    print(json.dumps({k: r[k] for k in ("thresholds_val", "heldout_summary_val_fitted",
                                        "heldout_summary_test_fitted")}, indent=1))
