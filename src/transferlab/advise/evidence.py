"""Measuring the scenario: how much labelled data, and how similar it is to what the
source learned -- from cheap evidence only (one frozen forward pass, no fine-tuning).

For each of a few depths d (all of them for models with up to ``ALL_DEPTHS`` blocks),
the features after block d (conv outputs globally average-pooled, the head's own input
at the last depth) of at most ``evidence_per_class`` train and val examples per class are
scored by

* ``logme``: LogME of the train features (You et al. 2021), a transferability estimate;
* ``probe_val_acc``: a multinomial logistic regression (the linear probe's L-BFGS fit,
  L2 picked on validation) trained on the train features and scored on validation -- or,
  with fewer than ``CV_BELOW`` validation examples per class, cross-validated over train +
  val -- the guide's "linear classifier on features from that layer", measured;

and, when the checkpoint has its source head, LEEP (Nguyen et al. 2020) of the source
head's predictions on the train split: the source's own accuracy signal.

Similarity is read from how much the TOP features keep of the best depth's probe:
``retained = (acc(top) - chance) / (acc(best depth) - chance)``. Features that suit the
target at the top mean the target resembles what the source learned (the guide's
"similar"); a top layer worse than an earlier one means the source's last layers
specialised to something else ("dissimilar"). Validation only: the test split is never read.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from transferlab.errors import UserError
from transferlab.features import prefix_features
from transferlab.inputs import Hidden, index
from transferlab.protocols.linear_probe import L2_GRID, PATH_ITERS, LogisticPath

ALL_DEPTHS = 8  # models with up to this many blocks are probed at every depth
# With fewer validation examples per class than this (k-shot tasks: 2 of 10), one
# validation split is too noisy to compare depths (10 examples: steps of 0.1); the probe
# accuracy is then a stratified cross-validation over the labelled train + val examples.
CV_BELOW = 10
CV_FOLDS = 4


@dataclass
class DepthEvidence:
    """The evidence at one depth (number of blocks whose output is read)."""

    depth: int
    block: str
    dim: int               # feature dimension after pooling
    logme: float
    probe_val_acc: float
    probe_l2: float


@dataclass
class Evidence:
    """Everything ``advise`` measured about the task, each number shown to the user."""

    examples_per_class: int        # labelled examples of the smallest class (train + val)
    num_classes: int
    n_train: int
    n_val: int
    chance: float                  # 1 / num_classes
    per_depth: list[DepthEvidence]
    top_depth: int
    best_depth: int                # argmax of probe_val_acc (ties: the deeper)
    top_acc: float
    best_acc: float
    retained: float                # (top_acc - chance) / (best_acc - chance), in [0, 1]
    leep: float | None             # None: the checkpoint has no usable source head
    n_evidence_train: int
    n_evidence_val: int
    cross_validated: bool = False
    time_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def depth(self, d: int) -> DepthEvidence:
        return next(e for e in self.per_depth if e.depth == d)


def examples_per_class(task) -> tuple[int, np.ndarray, np.ndarray]:
    """(min labelled examples per class, train counts, val counts) of ``task``."""
    c = task.num_classes
    tr = np.bincount(task.y_train.cpu().numpy(), minlength=c)
    va = np.bincount(task.y_val.cpu().numpy(), minlength=c)
    return int((tr + va).min()), tr, va


def check_task(task) -> None:
    """A task advise can measure: 2+ classes, and train AND validation examples in every
    class (the evidence is validation accuracy; the test split is never used)."""
    k, tr, va = examples_per_class(task)
    if task.num_classes < 2:
        raise UserError(f"--task={str(task.spec)!r} is invalid: it has {task.num_classes} "
                        "class; allowed is a task with 2+ classes; widen its classes=")
    if tr.min() < 1 or va.min() < 1:
        raise UserError(
            f"--task={str(task.spec)!r} is invalid: its smallest class has {int(tr.min())} "
            f"training and {int(va.min())} validation example(s) ({k} labelled per class); "
            "allowed is a task with training and validation examples in every class "
            "(per_class >= 4, or val_per_class=v besides the k); pass more labelled examples")


def _subset(y: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of at most ``per_class`` examples of each class (seeded, sorted), on
    ``y``'s device."""
    g = np.random.default_rng(seed)
    yy = y.cpu().numpy()
    keep = [g.permutation(np.flatnonzero(yy == c))[:per_class] for c in np.unique(yy)]
    return torch.as_tensor(np.sort(np.concatenate(keep)), dtype=torch.long, device=y.device)


def probe_depths(num_blocks: int) -> list[int]:
    """Every depth for small models, else six spread from 1 to the top (always included)."""
    if num_blocks <= ALL_DEPTHS:
        return list(range(1, num_blocks + 1))
    return sorted({int(round(x)) for x in np.linspace(1, num_blocks, 6)})


def _pool(model, h, depth: int) -> torch.Tensor:
    """(N, ...) output of block ``depth`` -> (N, dim) float features."""
    if depth == model.num_blocks:
        from transferlab.models.heads import head_input
        return head_input(model, h).float()
    if isinstance(h, Hidden):
        mask = h.mask.to(h.hidden.dtype).unsqueeze(-1)
        return (h.hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
    return (h.mean(dim=(2, 3)) if h.dim() == 4 else h.flatten(1)).float()


def _path_accs(x_tr, y_tr, x_va, y_va, num_classes: int, max_iter: int = PATH_ITERS
               ) -> np.ndarray:
    """Validation accuracy of the L-BFGS logistic path at each L2 of ``L2_GRID``
    (warm-started, ``max_iter`` steps each: loose, as the linear probe's own L2 path).

    Features are standardised by the train split's spread (the probes of different depths
    then share one L2 grid)."""
    scale = x_tr.std(0, keepdim=True).clamp_min(1e-6)
    # Plain (unpreconditioned) loose fits: the thresholds that read these accuracies were
    # calibrated on them.
    path = LogisticPath(x_tr / scale, y_tr, num_classes, precondition=False)
    accs = []
    for lam in L2_GRID:
        path.fit(lam, max_iter=max_iter)
        with torch.no_grad():
            accs.append((path.logits(x_va / scale).argmax(1) == y_va).float().mean().item())
    return np.asarray(accs)


def _probe(f: dict, y: dict, num_classes: int, cv: bool) -> tuple[float, float]:
    """(best accuracy over the L2 grid, its L2): on validation, or ``CV_FOLDS``-fold
    stratified cross-validation over train + val when ``cv``.

    Small problems run on one thread: their matrix products take microseconds, and on a
    loaded machine two threads spinning for them cost ~100x more (measured: 170 s vs 8 s
    for a 50-example digits task at load 11 on 2 cores)."""
    threads = torch.get_num_threads()
    if f["train"].numel() < 2_000_000:
        torch.set_num_threads(1)
    try:
        return _probe_fits(f, y, num_classes, cv)
    finally:
        torch.set_num_threads(threads)


def _probe_fits(f: dict, y: dict, num_classes: int, cv: bool) -> tuple[float, float]:
    if not cv:
        accs = _path_accs(f["train"], y["train"], f["val"], y["val"], num_classes)
    else:
        from sklearn.model_selection import StratifiedKFold

        x, yy = torch.cat([f["train"], f["val"]]), torch.cat([y["train"], y["val"]])
        folds = min(CV_FOLDS, int(np.bincount(yy.cpu().numpy()).min()))
        skf = StratifiedKFold(folds, shuffle=True, random_state=0)
        accs = np.mean([_path_accs(x[tr], yy[tr], x[va], yy[va], num_classes)
                        for tr, va in skf.split(np.zeros(len(yy)), yy.cpu().numpy())], axis=0)
    i = int(np.argmax(accs))  # the first (strongest L2) of equals
    return float(accs[i]), L2_GRID[i]


@torch.no_grad()
def measure(model, task, per_class: int = 300, depths: list[int] | None = None) -> Evidence:
    """The scenario evidence of ``model`` (a BlockModel) on ``task`` (see module doc).

    Args:
        per_class: at most this many train and val examples per class are used.
        depths: depths to probe (default ``probe_depths``); the top is always added.
    """
    from transferlab.transferability import leep, logme
    from transferlab.transferability.score import source_probabilities

    t0 = time.perf_counter()
    check_task(task)
    k, _, _ = examples_per_class(task)
    model = model.eval()
    L = model.num_blocks
    depths = sorted(set(depths or probe_depths(L)) | {L})
    i_tr, i_va = _subset(task.y_train, per_class), _subset(task.y_val, per_class, seed=1)
    xs = {"train": index(task.x_train, i_tr), "val": index(task.x_val, i_va)}
    ys = {"train": task.y_train[i_tr], "val": task.y_val[i_va]}
    h, at, rows, notes = dict(xs), 0, [], []
    cv = int(np.bincount(ys["val"].cpu().numpy(), minlength=task.num_classes).min()) < CV_BELOW
    if cv:
        notes.append(f"probe accuracy by {CV_FOLDS}-fold cross-validation over the labelled "
                     f"train + val examples (fewer than {CV_BELOW} validation examples in a "
                     "class)")
    top_feats = None
    for d in depths:
        h = {s: prefix_features(model, v, d, start=at) for s, v in h.items()}
        at = d
        f = {s: _pool(model, v, d) for s, v in h.items()}
        if d == L:  # what the source head reads (source_probabilities flattens the same way)
            top_feats = h["train"] if isinstance(h["train"], Hidden) else h["train"].flatten(1)
        lm = float(logme(f["train"].double().cpu().numpy(), ys["train"].cpu().numpy()))
        acc, l2 = _probe(f, ys, task.num_classes, cv)
        rows.append(DepthEvidence(d, model.block_names[d - 1], int(f["train"].shape[1]),
                                  lm, acc, l2))
    lp = None
    if model.num_classes >= 1:
        try:
            probs = source_probabilities(model, None, features=top_feats).cpu().numpy()
            lp = float(leep(probs, ys["train"].cpu().numpy()))
        except (UserError, RuntimeError, ValueError) as exc:
            notes.append(f"LEEP not computed: {str(exc).splitlines()[0]}")
    else:
        notes.append("LEEP not computed: the checkpoint has no source head")
    chance = 1.0 / task.num_classes
    top = rows[-1]
    best = max(rows, key=lambda r: (r.probe_val_acc, r.depth))
    gain = best.probe_val_acc - chance
    retained = 1.0 if gain <= 0 else float(np.clip((top.probe_val_acc - chance) / gain, 0, 1))
    return Evidence(k, task.num_classes, len(task.y_train), len(task.y_val), chance, rows,
                    L, best.depth, top.probe_val_acc, best.probe_val_acc, retained, lp,
                    len(i_tr), len(i_va), cv, time.perf_counter() - t0, notes)
