"""The defrost study's settings: one field per ``transferlab study defrost`` flag.

Cheap checks live here (choices, ranges); the checks that need the model (depths) or the
data live in ``design.design``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from transferlab.errors import bad_value

BACKENDS = ("local", "ray")
KNOBS = ("eta", "q", "both")


def int_list(text: str) -> list[int]:
    """"50,200,1000" -> [50, 200, 1000] (for comma-list flags)."""
    try:
        return [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise bad_value("list", text, "a comma list of integers such as 50,200,1000") from None


def float_list(text: str) -> list[float]:
    """"0,0.5,0.9" -> [0.0, 0.5, 0.9]."""
    try:
        return [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise bad_value("list", text, "a comma list of numbers such as 0,0.5,0.9") from None


@dataclass
class DefrostConfig:
    """What to run. ``sizes``, ``correlations`` and ``depths`` may be lists in Python."""

    synthetic: bool = field(default=False, metadata={
        "help": "run on the synthetic correlated hidden-manifold pair (source `synthetic`), "
                "the correlation set by --knob and --correlations"})
    source_task: str | None = field(default=None, metadata={
        "help": "image source task instead of --synthetic, e.g. mnist:classes=0-4 (convnet)"})
    target_task: str | None = field(default=None, metadata={
        "help": "image target task (with --source-task), e.g. kmnist or mnist:classes=5-9; "
                "its size is set by --sizes (per_class = N / classes)"})
    sizes: list[int] | None = field(default=None, metadata={
        "help": "target sizes N (labelled target examples, validation included), comma list "
                "(default: the budget's)", "type": int_list})
    correlations: list[float] | None = field(default=None, metadata={
        "help": "synthetic only: correlation levels in [0, 1] given to --knob (default: the "
                "budget's)", "type": float_list})
    knob: str = field(default="both", metadata={
        "help": "synthetic only: which correlation the levels set: eta (feature map), q "
                "(teacher) or both (eta = q = level; the default: the regime where the paper's "
                "n* moves)", "choices": KNOBS})
    generator: str | None = field(default=None, metadata={
        "help": "synthetic only: extra generator keys for source and target, e.g. "
                "'hidden=64:noise=0.2' (dim, latent, hidden, n_classes, noise, rho)"})
    seeds: int = field(default=5, metadata={
        "help": "number of seeds 0..S-1 (default 5: the paired tests on integer n* need "
                "them); a seed fixes the generator (synthetic), the source "
                "network and every trial's initialisation: the unit of the paired tests"})
    budget: str = field(default="quick", metadata={
        "help": "quick (CPU: under 30 min for --synthetic), standard or full (GPU)"})
    depths: list[int] | None = field(default=None, metadata={
        "help": "freeze depths n to run (default 0..L, L = the model's blocks)",
        "type": int_list})
    reinit: bool = field(default=False, metadata={
        "help": "also run reinit:n (first n blocks copied and frozen, the rest re-initialised)"})
    backend: str = field(default="local", metadata={
        "help": "where trials run", "choices": BACKENDS})
    workers: int | None = field(default=None, metadata={
        "help": "parallel trials (default: one per core on CPU)"})
    address: str | None = field(default=None, metadata={
        "help": "Ray cluster address (--backend ray)"})
    out: str | None = field(default=None, metadata={
        "help": "output folder (default runs/defrost-synthetic or runs/defrost-<target>)"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder holding the datasets (unset: $TRANSFERLAB_DATA)"})

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise bad_value("--backend", self.backend, " or ".join(BACKENDS))
        if self.knob not in KNOBS:
            raise bad_value("--knob", self.knob, " or ".join(KNOBS))
        images = self.source_task is not None or self.target_task is not None
        if self.synthetic and images:
            raise bad_value("--source-task", self.source_task, "not with --synthetic",
                            "pass either --synthetic or --source-task and --target-task")
        if not self.synthetic and not images:
            raise bad_value("--synthetic", False, "--synthetic, or --source-task with "
                            "--target-task", "e.g. --synthetic --budget quick")
        if images and (self.source_task is None or self.target_task is None):
            raise bad_value("--target-task" if self.target_task is None else "--source-task",
                            None, "both --source-task and --target-task",
                            "add the missing one")
        if images and (self.correlations is not None or self.generator is not None):
            raise bad_value("--correlations" if self.correlations is not None
                            else "--generator", self.correlations or self.generator,
                            "only with --synthetic (an image pair has one correlation)",
                            "drop it")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise bad_value("--seeds", self.seeds, "an integer >= 1")
        if self.sizes is not None:
            if not self.sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                     for n in self.sizes):
                raise bad_value("--sizes", self.sizes, "target sizes N >= 1, e.g. 50,200,1000")
            self.sizes = sorted(set(self.sizes))
        if self.correlations is not None:
            bad = [c for c in self.correlations
                   if not isinstance(c, (int, float)) or not math.isfinite(c) or not 0 <= c <= 1]
            if bad or not self.correlations:
                raise bad_value("--correlations", bad[0] if bad else self.correlations,
                                "levels in [0, 1]", "e.g. --correlations 0,0.5,0.9")
            self.correlations = sorted({float(c) for c in self.correlations})
