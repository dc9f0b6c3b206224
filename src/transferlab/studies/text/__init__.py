"""Feature-based vs fine-tuning on a pretrained sentence encoder (the guide's text half).

>>> from transferlab.studies.text import run
>>> result = run(out="runs/text", shots=[10], full=False)   # doctest: +SKIP

Files as in ``yosinski/``: ``config.py`` (flags), ``study.py`` (design on the sweep engine,
statistics, findings), ``plot.py``, ``report.py``; this file registers ``transferlab study
text``.
"""

from transferlab.studies.kit.registry import Study, register_study
from transferlab.studies.text.config import TextConfig


def run(*args, **kwargs):
    from transferlab.studies.text.study import run as _run
    return _run(*args, **kwargs)


def _run(cfg: TextConfig, progress: bool = True) -> dict:
    from transferlab.studies.text.study import run_config
    return run_config(cfg, progress=progress)


def _summarize(result: dict):
    from transferlab.studies.text.study import summarize
    return summarize(result)


STUDY = register_study(Study(
    name="text",
    summary="feature-based (linear-probe, layer-mix) vs fine-tuning (freeze:n, finetune) "
            "on a sentence encoder (MiniLM, BANKING77)",
    description="BANKING77 (or any text CSV) at k labelled examples per class and on the "
                "full training set: linear-probe, layer-mix, freeze:n, finetune with lr_mult "
                "1.0 and 0.1 from a pretrained encoder (default the built-in MiniLM); "
                "accuracy with 95% CIs over episodes, wall time per protocol, paired tests "
                "(Holm), text.png, results.json and report.html in --out. Reruns resume.",
    config=TextConfig, run=_run, summarize=_summarize))
