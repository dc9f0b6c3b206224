"""The few-shot fine-tuning study (after arXiv 2012.00204): tune convolutions, BatchNorm, the
head or everything with k examples per class, and what fine-tuning changed in the weights.

>>> from transferlab.studies import fewshot
>>> res = fewshot.run(pretrain="digits", budget="quick", out="runs/fs")  # doctest: +SKIP

Files, in the shape of ``studies/yosinski``: ``config.py`` (flags), ``budgets.py`` and
``design.py`` (tasks, per-protocol settings, sweep specs), ``cells.py`` (statistics per
protocol and k, paired tests), ``weightchange.py`` (weight analysis), ``findings.py``,
``plot.py``, ``report.py``, ``study.py`` (``run``), ``engine.py`` (episodes in batches).
"""

from transferlab.studies.fewshot.config import FewshotConfig
from transferlab.studies.kit.registry import Study, register_study

__all__ = ["run", "run_config", "summarize", "FewshotConfig", "DB_NAME", "STUDY"]

_LAZY = {"run", "run_config", "summarize", "DB_NAME"}


def __getattr__(name: str):
    if name in _LAZY:
        from transferlab.studies.fewshot import study
        return getattr(study, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _run(cfg: FewshotConfig, progress: bool = True) -> dict:
    from transferlab.studies.fewshot.study import run_config
    return run_config(cfg, progress=progress)


def _summarize(result: dict) -> tuple[list[str], dict]:
    from transferlab.studies.fewshot.study import summarize
    return summarize(result)


STUDY = register_study(Study(
    name="fewshot",
    summary="Few-shot fine-tuning (arXiv 2012.00204): BN vs conv vs head vs all, k shots, "
            "episodes, weight changes",
    description="Fine-tune a source (pretrained on --pretrain, or --source CKPT) on E support "
                "sets of k examples per class of --target with each protocol (linear-probe, "
                "head-only, bn-only, conv-only, finetune, bn-adapt, -frozen-stats variants); "
                "paired tests with Holm, accuracy-vs-k with CI bands, the relative weight "
                "change per block and kind, fewshot.json and report.html in --out. Reruns "
                "resume.",
    config=FewshotConfig, run=_run, summarize=_summarize))
