"""The advisor's rules: the guide's 2 x 2 scenarios made quantitative, and the candidates.

The practitioner's guide (CS231n, "Transfer Learning") decides by two things, the size of
the new dataset and its similarity to the original:

* small & similar: the network as a fixed feature extractor + a linear classifier;
* large & similar: fine-tune the whole network (with a smaller learning rate);
* small & dissimilar: a linear classifier on features from EARLIER layers;
* large & dissimilar: fine-tune everything (or train from scratch).

Here ``size`` is ``examples_per_class >= size_k`` ("large") and ``similarity`` is
``retained >= retained_min`` ("similar", see ``evidence``); "earlier layers" is the depth
whose probe is best on validation. The thresholds, and the protocol family recommended in
each scenario (the guide's table by default), are fitted on the guide study's four cases
(``transferlab study guide``, ``calibrate.fit``); see docs/advise.md for the fitted values
and the held-out evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transferlab.errors import bad_value

SIZES = ("small", "large")
SIMILARITIES = ("similar", "dissimilar")

# The guide's own words for each scenario (quoted in every explanation).
GUIDE = {
    ("small", "similar"): "New dataset is small and similar to original dataset: since the "
    "data is small, it is not a good idea to fine-tune the ConvNet due to overfitting "
    "concerns; the best idea might be to train a linear classifier on the CNN codes.",
    ("large", "similar"): "New dataset is large and similar to the original dataset: since "
    "we have more data, we can have more confidence that we won't overfit if we were to "
    "try to fine-tune through the full network.",
    ("small", "dissimilar"): "New dataset is small but very different from the original "
    "dataset: since the data is small, it is likely best to only train a linear "
    "classifier; since the dataset is very different, it might not be best to train the "
    "classifier from the top of the network, which contains more dataset-specific "
    "features; instead, it might work better to train the SVM classifier from activations "
    "somewhere earlier in the network.",
    ("large", "dissimilar"): "New dataset is large and very different from the original "
    "dataset: since the dataset is very large, we may expect that we can afford to train a "
    "ConvNet from scratch; however, in practice it is very often still beneficial to "
    "initialize with weights from a pretrained model ... we would then have enough data "
    "and confidence to fine-tune through the entire network.",
}
SMALLER_LR = ("It is common to use a smaller learning rate for ConvNet weights that are "
              "being fine-tuned ... we expect that the ConvNet weights are relatively good, "
              "so we don't wish to distort them too quickly and too much.")


# What each scenario's first choice can be: a protocol family, resolved per case
# ("probe" = probe:d* at the best probe depth, "freeze" = freeze:n at the middle depth).
FAMILIES = ("linear-probe", "probe", "freeze", "finetune-0.1", "finetune-1", "scratch", "lp-ft")
# The guide's own table (the default when no measured case says otherwise).
GUIDE_TABLE = {"small_similar": "linear-probe", "small_dissimilar": "probe",
               "large_similar": "finetune-0.1", "large_dissimilar": "finetune-1"}


@dataclass(frozen=True)
class Thresholds:
    """Where the advisor draws the guide's lines, and which protocol family it recommends
    in each of the four scenarios (fitted by ``calibrate.fit``; the guide's table where no
    calibration case fell into a scenario)."""

    # Defaults: the fit on the guide study's four cases by VALIDATION accuracy (quick budget,
    # 2 seeds, width-8 convnets on 16x16 MNIST/KMNIST; benchmarks/refit_guide_on_val.py,
    # results/guide_mnist_quick_valfit.json, docs/advise.md). For those small sources
    # scratch and fine-tuning at lr_mult 1 beat the guide's table but one cell; use
    # ``Thresholds.guide()`` for the guide's own table with these lines.
    size_k: int = 71             # labelled examples per class from which a dataset is "large"
    retained_min: float = 0.844  # top features keep >= this share of the best probe: "similar"
    small_similar: str = "scratch"
    small_dissimilar: str = "probe"
    large_similar: str = "finetune-1"
    large_dissimilar: str = "scratch"

    @classmethod
    def guide(cls, **lines) -> Thresholds:
        """The guide's own table (``GUIDE_TABLE``) with the default (or given) lines."""
        return cls(**{**GUIDE_TABLE, **lines})

    def __post_init__(self):
        if isinstance(self.size_k, bool) or not isinstance(self.size_k, int) or self.size_k < 2:
            raise bad_value("size_k", self.size_k, "an integer >= 2")
        if not 0.0 <= self.retained_min <= 1.0:
            raise bad_value("retained_min", self.retained_min, "a number in [0, 1]")
        for cell in GUIDE_TABLE:
            if getattr(self, cell) not in FAMILIES:
                raise bad_value(cell, getattr(self, cell), ", ".join(FAMILIES))

    def family(self, size: str, similarity: str) -> str:
        return getattr(self, f"{size}_{similarity}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """One way to transfer: a protocol with its settings.

    ``epochs`` is None for the solver protocols (linear-probe, probe:n: L-BFGS, no epochs).
    """

    protocol: str
    lr_mult: float | None = None
    epochs: int | None = None
    lr: float | None = None

    @property
    def label(self) -> str:
        """A unique, readable name: the protocol, with lr_mult where it is a choice."""
        if self.protocol == "finetune":
            return f"finetune (lr_mult {self.lr_mult:g})"
        return self.protocol

    @property
    def solver(self) -> bool:
        return self.protocol == "linear-probe" or self.protocol.startswith("probe:")

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "label": self.label, "lr_mult": self.lr_mult,
                "epochs": self.epochs, "lr": self.lr}


def scenario(k: int, retained: float, th: Thresholds) -> tuple[str, str]:
    """(size, similarity) of a case with ``k`` labelled examples per class."""
    return ("large" if k >= th.size_k else "small",
            "similar" if retained >= th.retained_min else "dissimilar")


def candidate_set(num_blocks: int, best_depth: int, epochs: int, lr: float,
                  probe_ok: bool = True) -> list[Candidate]:
    """Every candidate the advisor considers (and the guide study measures): linear-probe,
    probe:n at the best and the middle depth, freeze:n at the middle and L-2, finetune at
    lr_mult 1.0 and 0.1, scratch, lp-ft (probe, then fine-tune from its head; lr_mult 0.1).
    ``probe_ok=False`` leaves probe:n out (a tree without it).
    """
    L, mid = num_blocks, max(1, num_blocks // 2)
    out = [Candidate("linear-probe")]
    if probe_ok:
        out += [Candidate(f"probe:{d}") for d in dict.fromkeys([best_depth, mid]) if d < L]
    out += [Candidate(f"freeze:{d}", 1.0, epochs, lr)
            for d in dict.fromkeys([mid, max(1, L - 2)]) if 1 <= d < L]
    out += [Candidate("finetune", 0.1, epochs, lr), Candidate("finetune", 1.0, epochs, lr),
            Candidate("scratch", 1.0, epochs, lr), Candidate("lp-ft", 0.1, epochs, lr)]
    return out


def _find(cands: list[Candidate], protocol: str, lr_mult: float | None = None):
    for c in cands:
        if c.protocol == protocol and (lr_mult is None or c.lr_mult == lr_mult):
            return c
    return None


def resolve(family: str, cands: list[Candidate], best_depth: int,
            num_blocks: int) -> Candidate | None:
    """The candidate a protocol family means for this case (None if not among ``cands``)."""
    if family == "probe":
        return (_find(cands, f"probe:{best_depth}") if best_depth < num_blocks
                else _find(cands, "linear-probe"))
    if family == "freeze":
        return _find(cands, f"freeze:{max(1, num_blocks // 2)}")
    if family.startswith("finetune-"):
        return _find(cands, "finetune", float(family.split("-")[1]))
    return _find(cands, family)


def rank(cands: list[Candidate], size: str, similarity: str, best_depth: int,
         num_blocks: int, th: Thresholds) -> list[Candidate]:
    """The candidates in the advisor's order of preference for this scenario: the
    scenario's family (``th``), then the guide's order for the scenario, then the rest."""
    probe = resolve("probe", cands, best_depth, num_blocks)
    lp = _find(cands, "linear-probe")
    freezes = [c for c in cands if c.protocol.startswith("freeze:")]
    ft_small, ft_one = _find(cands, "finetune", 0.1), _find(cands, "finetune", 1.0)
    scratch, lpft = _find(cands, "scratch"), _find(cands, "lp-ft")
    # lp-ft follows the linear probe / the small-lr fine-tune it combines (Kumar et al.:
    # better than either when the features are good, i.e. in the similar scenarios)
    if size == "small" and similarity == "similar":
        order = [lp, probe, lpft, ft_small, *freezes]
    elif size == "small":
        order = [probe or lp, lp, *reversed(freezes), ft_small, lpft]
    elif similarity == "similar":
        order = [ft_small, lpft, *reversed(freezes), ft_one, lp]
    else:
        order = [ft_one, ft_small, scratch, *freezes, probe or lp, lpft]
    first = resolve(th.family(size, similarity), cands, best_depth, num_blocks)
    seen: list[Candidate] = []
    for c in [first, *order, *cands]:
        if c is not None and c not in seen:
            seen.append(c)
    return seen


def guide_rule(k: int, nominal_similar: bool, num_blocks: int, th: Thresholds) -> str:
    """The guide's fixed rule as a baseline: the label of the candidate it picks.

    It knows the case's nominal similarity (same domain or not, as the study designed it),
    uses the same size line as the advisor, and reads "earlier layers" as the middle depth
    (the guide names no depth); it always fine-tunes with the smaller learning rate.
    """
    small = k < th.size_k
    if small:
        return "linear-probe" if nominal_similar else f"probe:{max(1, num_blocks // 2)}"
    return "finetune (lr_mult 0.1)"


ALWAYS_FINETUNE = "finetune (lr_mult 0.1)"  # the other baseline: the protocol's default
