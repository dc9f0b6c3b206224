"""The guide study's design: budgets, the cases (source -> target at a size), sweep specs.

Four *fit* cases are the guide's scenarios, from one MNIST 0-4 source: similar = MNIST
5-9 (same domain), dissimilar = KMNIST 0-4 (another script); small = 10 labelled
examples per class, large = the quick budget's 500 (the full split does not fit the shared
2-core CPU; ``standard`` uses all). The advisor's thresholds are fitted on them. *Held-out*
cases are other pairs and sizes, never used by the fit. ``digits`` cases (offline, tests
and the demo) are digits 0-4 -> 5-9 at two sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from transferlab.errors import bad_value

ARCH = "convnet"
KMNIST_MAX = 700  # source examples per class of a KMNIST source (800 train per class exist)


@dataclass(frozen=True)
class GuideBudget:
    name: str
    epochs: int
    size: int
    width: int
    fc_width: int
    source_per_class: int | None   # pretraining examples per class (None: all)
    large: int | None              # "large" targets: per_class (None: the full split)
    lr_mults_fit: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0)  # the smaller-lr plot
    batch_size: int = 64
    lr: float = 0.05
    min_steps: int = 100          # SGD candidates train at least this many steps
    probe_depths: tuple[int, ...] | None = None  # probe:n depths (None: 1..L-1)

    def train(self, n_train: int | None = None) -> dict:
        """Pretraining (``n_train`` None) or a candidate's training on ``n_train`` examples
        (epochs raised to ``min_steps`` steps, as the advisor does)."""
        from transferlab.advise.budgets import epochs_for

        epochs = self.epochs if n_train is None else epochs_for(
            n_train, self.epochs, self.min_steps, self.batch_size)
        # min_steps 0: the epochs are planned here (raised above for candidates, plain for
        # pretraining), as the advisor's race does.
        return {"epochs": epochs, "lr": self.lr, "batch_size": self.batch_size, "min_steps": 0}

    def arch_kwargs(self) -> dict:
        return {"width": self.width, "fc_width": self.fc_width}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


BUDGETS = {
    "tiny": GuideBudget("tiny", epochs=1, size=8, width=4, fc_width=16, source_per_class=40,
                        large=40, lr_mults_fit=(0.1, 1.0), min_steps=2,
                        probe_depths=(3,)),
    "quick": GuideBudget("quick", epochs=10, size=16, width=8, fc_width=64,
                         source_per_class=1000, large=500),
    "standard": GuideBudget("standard", epochs=20, size=28, width=16, fc_width=128,
                            source_per_class=None, large=None),
}
PUBLIC = ("quick", "standard")


def get_budget(name: str) -> GuideBudget:
    if name not in BUDGETS:
        raise bad_value("--budget", name, ", ".join(PUBLIC), "quick runs on a CPU")
    return BUDGETS[name]


@dataclass(frozen=True)
class Case:
    """One (source, target, size) case; ``k`` None means the budget's "large"."""

    name: str
    source: str            # dataset:classes of the source (size keys added from the budget)
    target: str            # dataset:classes of the target
    k: int | None          # labelled examples per class (None: large)
    similar: bool          # the nominal similarity (same domain), for the guide's rule
    role: str              # "fit" | "heldout"

    def source_task(self, b: GuideBudget) -> str:
        n = b.source_per_class
        if n and self.source.startswith("kmnist"):
            n = min(n, KMNIST_MAX)  # only KMNIST's 10,000-image release: 800 train / class
        if n and self.source.startswith("digits"):
            n = None  # ~120 per class: all of them
        pc = f":per_class={n}" if n else ""
        return f"{self.source}{pc}:size={b.size}"

    def target_task(self, b: GuideBudget) -> str:
        k = self.k if self.k is not None else b.large
        if self.k is None and self.target.startswith("digits") and (k or 0) > 100:
            k = None  # digits has ~110 per class: "large" is all of it
        return f"{self.target}{f':per_class={k}' if k else ''}:size={b.size}"

    def scenario(self) -> str:
        return f"{'small' if self.k is not None and self.k <= 10 else 'large'}-" \
               f"{'similar' if self.similar else 'dissimilar'}"


M04, M59 = "mnist:classes=0-4", "mnist:classes=5-9"
K04, K59 = "kmnist:classes=0-4", "kmnist:classes=5-9"
D04, D59 = "digits:classes=0-4", "digits:classes=5-9"

CASE_SETS = {
    "mnist": [
        Case("small-similar", M04, M59, 10, True, "fit"),
        Case("large-similar", M04, M59, None, True, "fit"),
        Case("small-dissimilar", M04, K04, 10, False, "fit"),
        Case("large-dissimilar", M04, K04, None, False, "fit"),
        Case("m04-m59-k30", M04, M59, 30, True, "heldout"),
        Case("m04-m59-k100", M04, M59, 100, True, "heldout"),
        Case("m04-k04-k30", M04, K04, 30, False, "heldout"),
        Case("m04-k04-k100", M04, K04, 100, False, "heldout"),
        Case("m59-m04-k10", M59, M04, 10, True, "heldout"),
        Case("m59-m04-large", M59, M04, None, True, "heldout"),
        Case("k04-k59-k10", K04, K59, 10, True, "heldout"),
        Case("k04-k59-k100", K04, K59, 100, True, "heldout"),
        Case("k04-m59-k10", K04, M59, 10, False, "heldout"),
        Case("k04-m59-k100", K04, M59, 100, False, "heldout"),
        Case("d04-d59-k10", D04, D59, 10, True, "heldout"),
        Case("d04-d59-k60", D04, D59, 60, True, "heldout"),
    ],
    "digits": [
        Case("small-similar", D04, D59, 8, True, "fit"),
        Case("large-similar", D04, D59, None, True, "fit"),
        Case("d04-d59-k20", D04, D59, 20, True, "heldout"),
    ],
    # one fit case, for the end-to-end test (seconds)
    "smoke": [Case("small-similar", D04, D59, 8, True, "fit")],
}


def candidates(num_blocks: int, probe_depths: tuple[int, ...] | None = None) -> list[str]:
    """Every protocol the study measures besides finetune (which gets an lr_mult axis);
    ``lp-ft`` at its default lr_mult 0.1, so that the advisor's calibration can place it."""
    L = num_blocks
    return (["linear-probe"] + [f"probe:{n}" for n in (probe_depths or range(1, L))]
            + [f"freeze:{n}" for n in sorted({max(1, L // 2), max(1, L - 2)})]
            + ["scratch", "lp-ft"])


def sweep_specs(case: Case, b: GuideBudget, seeds: list[int], num_blocks: int,
                data_dir: str | None, n_train: int) -> list[dict]:
    """Two specs per case: every candidate protocol, and finetune over lr_mult; the
    target has ``n_train`` training examples (which sets the epochs)."""
    src = {"pretrain": {"task": case.source_task(b), "arch": ARCH,
                        "arch_kwargs": b.arch_kwargs(), "train": b.train(), "seed": 0}}
    common = {"target": case.target_task(b), "data_dir": data_dir,
              "sources": {"source": src}, "train": b.train(n_train)}
    mults = list(b.lr_mults_fit) if case.role == "fit" else [0.1, 1.0]
    return [{"name": f"guide-{case.name}", **common,
             "axes": {"protocol": candidates(num_blocks, b.probe_depths), "seed": seeds}},
            {"name": f"guide-{case.name}-finetune", **common,
             "axes": {"protocol": ["finetune"], "lr_mult": mults, "seed": seeds}}]
