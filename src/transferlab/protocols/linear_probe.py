"""``linear-probe``: frozen "CNN codes" + a multinomial logistic regression.

The head is fitted on cached features by full-batch L-BFGS (a direct solver), with the
L2 penalty chosen on the validation set (or by cross-validation over train + val when the
validation split is tiny) when not given, then refitted on train + val: every labelled
example of the target, never the test split. Seconds, not epochs of SGD.
The protocol's ``fit`` hook does this (``api.transfer`` just calls it); ``fit_probe`` is
reused by other protocols that end with a probe (``bn-adapt``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from transferlab.errors import UserError, bad_value
from transferlab.protocols.core import Plan, ProtocolConfig
from transferlab.protocols.registry import register_protocol

# Strongest penalty first: each fit warm-starts the next, weaker one (a regularisation path).
L2_GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


@dataclass
class LinearProbeConfig(ProtocolConfig):
    freeze_prefix: bool = True
    scaling: str = field(default="global", metadata={
        "help": "how features are scaled for the fit: 'global' (one scale, the default: "
                "better on network features) or 'feature' (each column to unit spread: "
                "for raw tabular features in mixed units), e.g. linear-probe:scaling=feature"})
    solver: ClassVar[str] = "lbfgs"
    needs_features: ClassVar[bool] = True  # the fit reads cached features, no augmentation

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.freeze_prefix and self.depth is None and self.upto is None):
            raise bad_value("freeze_prefix/depth", (self.freeze_prefix, self.depth),
                            "(True, None) for linear-probe: its L-BFGS fit needs every block "
                            "frozen", "use 'head-only' or 'freeze:n' to train blocks")
        check_scaling(self.scaling)

    def fit(self, plan: Plan, feats: dict, task, cfg, generator=None,
            progress: bool = False) -> dict:
        """Fit the head on ``feats`` (the last block's output per split)."""
        return fit_probe(plan.model, feats["train"], task.y_train, feats["val"], task.y_val,
                         cfg.l2, scaling=self.scaling)


def linear_head_input(model: nn.Module, feats) -> tuple[nn.Linear, torch.Tensor]:
    """The head's last linear layer and its (N, F) input for ``feats`` (the last block's
    output: a tensor, or ``Hidden`` for text models; pooling applied, see models.heads)."""
    from transferlab.models.heads import head_input, head_linear

    return head_linear(model), head_input(model, feats)


def _loss_grad(xc: torch.Tensor, y: torch.Tensor, onehot: torch.Tensor, w: torch.Tensor,
               b: torch.Tensor, l2: float, pen: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean cross-entropy + l2/2 sum_j pen_j ||w[:, j]||^2 and its gradient, by hand: no
    autograd graph, softmax in place, and (p - y)^T x in the fast (K, N) @ (N, D) order
    (measured 2x faster than autograd on the benchmark's features).

    xc: (N, D) features; y: (N,) int64; onehot: (N, K) float; w: (K, D); b: (K,);
    pen: (D,) per-feature penalty weights (None: all 1, the plain ridge).
    """
    z = torch.addmm(b, xc, w.t())
    lse = torch.logsumexp(z, 1, keepdim=True)
    wp = w if pen is None else w * pen
    loss = (lse.squeeze(1) - z.gather(1, y[:, None]).squeeze(1)).mean() \
        + 0.5 * l2 * (w * wp).sum()
    p = torch.exp_(z.sub_(lse)).sub_(onehot).div_(len(y))  # (softmax - onehot) / N
    return loss, torch.addmm(wp, p.t(), xc, beta=l2), p.sum(0)


def _worth_preconditioning(n: int, d: int, k: int) -> bool:
    """Whether rotating (N, D) features into their covariance's eigenbasis (N·D² + ~10·D³
    flops) costs less than the ~50 of 100 L-BFGS evaluations (3·N·D·K each) it was
    measured to save: D + 10·D²/N < 150·K. True for a 128-d convnet head at K = 5 or
    MiniLM's 384 dims at K = 77; false for EfficientNet's 1280 dims at K = 10."""
    return n > 0 and d + 10 * d * d / n < 150 * k


class LogisticPath:
    """Multinomial logistic regression fits on fixed features, for one or many L2 values.

    The features are centred once (exact: the unpenalised bias absorbs the mean, so the
    optimum is the same, and L-BFGS needs about a fifth fewer steps); each ``fit`` warm
    starts from the previous one. x: (N, D) float; y: (N,) int64; K classes.

    ``precondition`` (default: when cheap, see ``_worth_preconditioning``) solves the same
    problem in whitened coordinates: the centred features are rotated into the eigenbasis
    (V, s) of their covariance and column j scaled by d_j = (s_j / 4 + l2)^-1/2, the inverse
    square root of the loss's curvature along that direction (softmax curvature is at most
    1/4) plus the penalty's. With w = (w' * d) V^T the objective, hence the optimum, is the
    same (V is orthogonal, so ||w||^2 = ||w' * d||^2); only the conditioning changes. On
    the linear-probe benchmark's features (MNIST 5-9, 128 dims), warm-started from the L2
    path, 40 preconditioned iterations reach the objective that 100 plain ones did.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, bias: bool = True,
                 precondition: bool | None = None):
        self.bias = bias  # without a bias, centring would change the problem: none
        self.mu = x.mean(0) if bias else x.new_zeros(x.shape[1])
        xc = (x - self.mu).contiguous()
        if precondition is None:
            precondition = _worth_preconditioning(len(x), x.shape[1], num_classes)
        self.precondition = precondition
        if precondition:
            cov = (xc.t() @ xc).double() / max(len(x), 1)
            s, v = torch.linalg.eigh(cov)
            self._s, self._v = s.clamp_min(0).to(x.dtype), v.to(x.dtype)
            self.xc = xc @ self._v  # rotated; scaled per L2 in fit
        else:
            self.xc = xc
        self.y = y
        self.onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
        self.w = x.new_zeros(num_classes, x.shape[1])
        self.b = x.new_zeros(num_classes)

    def fit(self, l2: float, max_iter: int = 100, tolerance_grad: float = 1e-6) -> None:
        """Minimise mean CE + l2/2 ||W||^2 from the current weights (L-BFGS, strong Wolfe)."""
        if self.precondition:
            d = (self._s / 4 + l2).rsqrt()
            x, pen = self.xc * d, d * d
            w0 = (self.w @ self._v) / d
        else:
            x, pen, w0 = self.xc, None, self.w
        w = w0.clone().requires_grad_(True)
        b = self.b.clone().requires_grad_(self.bias)
        opt = torch.optim.LBFGS([w, b] if self.bias else [w], lr=1, max_iter=max_iter,
                                tolerance_grad=tolerance_grad, tolerance_change=1e-9,
                                history_size=20, line_search_fn="strong_wolfe")

        def closure():
            with torch.no_grad():
                loss, w.grad, gb = _loss_grad(x, self.y, self.onehot, w, b, l2, pen)
                if self.bias:
                    b.grad = gb
            return loss

        opt.step(closure)
        w = w.detach()
        self.w = (w * d) @ self._v.t() if self.precondition else w
        self.b = b.detach()

    def write_to(self, linear: nn.Linear) -> None:
        """Copy the fit into ``linear`` (weight (K, D), bias (K,)), undoing the centring."""
        with torch.no_grad():
            linear.weight.copy_(self.w)
            if linear.bias is not None:
                linear.bias.copy_(self.b - self.w @ self.mu)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) raw features -> (N, K) logits of the current fit."""
        return torch.addmm(self.b - self.w @ self.mu, x, self.w.t())


def fit_logistic(x: torch.Tensor, y: torch.Tensor, linear: nn.Linear, l2: float,
                 max_iter: int = 100, warm_start: bool = False) -> None:
    """Fit ``linear`` (in place) to minimise mean cross-entropy + l2/2 * ||W||^2.

    x: (N, D) float features; y: (N,) int64 labels. The bias is not penalised. Starts from
    zero weights (so the result depends on the data alone) unless ``warm_start``.
    """
    path = LogisticPath(x, y, linear.out_features, bias=linear.bias is not None)
    if warm_start:
        with torch.no_grad():
            path.w = linear.weight.detach().clone()
            bias = linear.bias.detach() if linear.bias is not None else torch.zeros_like(path.b)
            path.b = bias + path.w @ path.mu
    path.fit(l2, max_iter=max_iter)
    path.write_to(linear)


# The path is fitted loosely (the choice of L2 needs validation accuracy, not a precise
# optimum: measured, the same pick and accuracy to 1e-3), then the chosen value to
# convergence from its loose fit.
PATH_ITERS = 15
POLISH_ITERS = 100
# Preconditioned (see LogisticPath), 40 iterations reach the objective 100 plain ones did
# on the benchmark's features (0.105917 vs 0.105926, MNIST 5-9): the polish then costs 40%.
PRECONDITIONED_POLISH_ITERS = 40
# Above this many training examples the path runs on a fixed random subsample of this size
# (the pick needs validation accuracy, which a loose fit on 8k examples already orders
# like the full data), and only the polish reads every example.
PATH_MAX_SAMPLES = 8192


def _path_subsample(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """At most ``PATH_MAX_SAMPLES`` rows of (x, y), drawn by a fixed generator: the result
    depends on the data alone."""
    if len(y) <= PATH_MAX_SAMPLES:
        return x, y
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(y), generator=g)[:PATH_MAX_SAMPLES].sort().values.to(y.device)
    return x[idx], y[idx]


# Below this many validation examples in some class the validation split is too small to
# choose L2 on (at k = 10 per class it holds 2 per class): L2 is chosen by stratified
# cross-validation over train + val instead (the same rule as advise/evidence.py).
CV_BELOW = 10
CV_FOLDS = 5


def _val_acc(path: LogisticPath, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (path.logits(x).argmax(1) == y).float().mean().item() if len(y) else 0.0


def _select_on_val(x_tr, y_tr, x_va, y_va, k: int, bias: bool
                   ) -> tuple[float, float, LogisticPath]:
    """(L2, its validation accuracy, the loose path fit at it): the ``L2_GRID`` path on the
    train split (a fixed subsample above ``PATH_MAX_SAMPLES``), scored on the val split;
    ties go to the first (strongest) L2."""
    sub = LogisticPath(*_path_subsample(x_tr, y_tr), k, bias=bias)
    best = (-1.0, None, None)
    for lam in L2_GRID:
        sub.fit(lam, max_iter=PATH_ITERS)
        acc = _val_acc(sub, x_va, y_va)
        if acc > best[0]:
            best = (acc, lam, (sub.w, sub.b, sub.mu))
    sub.w, sub.b, sub.mu = best[2]
    return best[1], best[0], sub


def cv_folds(y: torch.Tensor, folds: int = CV_FOLDS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Stratified ``folds``-fold split of (N,) labels (fewer folds when a class is smaller):
    each class's examples in a fixed random order (a CPU generator seeded 0: the result
    depends on the labels alone) dealt round-robin to the folds. Returns [(train index,
    held-out index)] on ``y``'s device. (Not scikit-learn's StratifiedKFold: importing it
    costs seconds in every worker process.)"""
    yc = y.cpu()
    n = min(folds, int(torch.bincount(yc).min()))
    g = torch.Generator().manual_seed(0)
    fold_of = torch.empty(len(yc), dtype=torch.long)
    for c in torch.unique(yc):
        idx = torch.nonzero(yc == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        fold_of[idx] = torch.arange(len(idx)) % n
    out = []
    for f in range(n):
        held = fold_of == f
        out.append((torch.nonzero(~held).squeeze(1).to(y.device),
                    torch.nonzero(held).squeeze(1).to(y.device)))
    return out


def _select_by_cv(x, y, k: int, bias: bool) -> tuple[float, float]:
    """(L2, its mean held-out accuracy) by ``cv_folds`` over (x, y) (the union of the train
    and val examples): the loose ``L2_GRID`` path per fold; ties (common on small folds)
    broken by the lower mean held-out cross-entropy, then by the stronger L2."""
    acc, nll = torch.zeros(len(L2_GRID)), torch.zeros(len(L2_GRID))
    folds = cv_folds(y)
    for tr, va in folds:
        path = LogisticPath(x[tr], y[tr], k, bias=bias, precondition=False)
        for i, lam in enumerate(L2_GRID):
            path.fit(lam, max_iter=PATH_ITERS)
            with torch.no_grad():
                z = path.logits(x[va])
                acc[i] += (z.argmax(1) == y[va]).float().mean().item() / len(folds)
                nll[i] += torch.nn.functional.cross_entropy(z, y[va]).item() / len(folds)
    i = min(range(len(L2_GRID)), key=lambda j: (-round(acc[j].item(), 9), nll[j].item(), j))
    return L2_GRID[i], float(acc[i])


def standardized_features(x_tr: torch.Tensor, x_va: torch.Tensor, scaling: str = "global"
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_tr / s, x_va / s, s): (N, D) features divided by s (D,) from the train split.

    ``scaling="global"`` (the default): one number for every feature, the root mean square
    of their spreads; ``"feature"``: each feature's spread (1 for constant features; see
    ``models.standardize.feature_scale``), so the solution does not depend on any column's
    units (a column in 1e3 next to one in 1e-3 overflowed L-BFGS before). "global" keeps the
    features' relative scales: on a network's features, where near-silent units would be
    blown up to unit spread, it was the better probe (measured: docs/ARCHITECTURE.md). Both
    make the probe invariant to the features' overall units; only "feature" to each
    column's.
    The head then gets ``W / s``, working on raw features.
    """
    from transferlab.models.standardize import feature_scale

    scale = feature_scale(x_tr)
    if scaling == "global":
        scale = scale.pow(2).mean().sqrt().expand_as(scale).clone()
    return x_tr / scale, x_va / scale, scale


SCALINGS = ("global", "feature")


def check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise bad_value("scaling", scaling, f"one of {', '.join(SCALINGS)}",
                        "use 'global' (one scale: keeps the features' relative sizes, the "
                        "better probe on network features) or 'feature' (per feature: "
                        "invariant to each column's units, for raw tabular features)")


def _choose_l2(x_tr, y_train, x_va, y_val, k: int, bias: bool, l2: float | None,
               refit: bool) -> tuple[float, float | None, str, LogisticPath | None]:
    """(L2, the held-out accuracy that chose it, how, a warm start or None) on features
    already scaled; see ``fit_probe`` for the rules."""
    x_all, y_all = torch.cat([x_tr, x_va]), torch.cat([y_train, y_val])
    if not len(y_val):
        return ((L2_GRID[0] if l2 is None else l2), None,
                ("given" if l2 is not None else "none: no validation data"), None)
    if l2 is not None:
        held = LogisticPath(x_tr, y_train, k, bias=bias)
        held.fit(l2, max_iter=PATH_ITERS)
        return l2, _val_acc(held, x_va, y_val), "given", held
    if refit and int(torch.bincount(y_val.cpu(), minlength=k).min()) < CV_BELOW:
        # (refit=False: the val split picks something else afterwards, so it must not have
        # steered L2 through the folds: L2 is then chosen on it alone, as below)
        l2, acc = _select_by_cv(x_all, y_all, k, bias)
        return l2, acc, f"cv-{min(CV_FOLDS, int(torch.bincount(y_all.cpu()).min()))}", None
    l2, acc, start = _select_on_val(x_tr, y_train, x_va, y_val, k, bias)
    return l2, acc, "val", start


def fit_probe(model: nn.Module, f_train: torch.Tensor, y_train: torch.Tensor,
              f_val: torch.Tensor, y_val: torch.Tensor, l2: float | None = None,
              refit: bool = True, scaling: str = "global") -> dict:
    """Fit ``model``'s head by L-BFGS on features: choose L2, then refit on every label.

    f_*: (N, ...) outputs of the last block; y_*: (N,) int64. The features are scaled for
    the fit (``standardized_features``: one scale for all by default, ``scaling="feature"``
    per feature) and the head maps them back to raw features. L2 (unless given) is chosen on the val split, or
    by ``CV_FOLDS``-fold cross-validation over train + val when some class has fewer than
    ``CV_BELOW`` validation examples; the final fit then uses train + val (all k labelled
    examples per class, never the test split). Returns ``{"l2", "val_acc",
    "l2_selection", "scaling", "refit_examples"}``: ``val_acc`` is the held-out accuracy
    that chose L2 (the val split's, of the fit on train only; or the mean CV accuracy),
    never the accuracy of the final fit on examples it trained on (None without validation
    data: the first, strongest L2 is kept). ``refit=False`` keeps the final fit on the train
    split and picks L2 on the val split alone (for a caller that still selects on the val
    split afterwards, e.g. ``lp-ft``'s epochs or the ensemble's alpha).
    """
    check_scaling(scaling)
    linear, x_tr = linear_head_input(model, f_train)
    _, x_va = linear_head_input(model, f_val)
    bias, k = linear.bias is not None, linear.out_features
    x_tr, x_va, scale = standardized_features(x_tr.float(), x_va.float(), scaling)
    l2, acc, how, start = _choose_l2(x_tr, y_train, x_va, y_val, k, bias, l2, refit)
    x_all, y_all = torch.cat([x_tr, x_va]), torch.cat([y_train, y_val])
    path = LogisticPath(x_all, y_all, k, bias=bias) if refit else \
        LogisticPath(x_tr, y_train, k, bias=bias)
    if start is not None:
        # warm start: the same logits under the union's centring, w (x - mu_s) + b = w (x - mu) + b'
        path.w, path.b = start.w, start.b + start.w @ (path.mu - start.mu)
    else:  # walk the path down to the chosen L2 (warm starts, as in selection)
        for lam in L2_GRID:
            if lam <= l2:
                break
            path.fit(lam, max_iter=PATH_ITERS)
    path.fit(l2, max_iter=PRECONDITIONED_POLISH_ITERS if path.precondition else POLISH_ITERS)
    path.write_to(linear)
    with torch.no_grad():
        linear.weight.div_(scale.to(linear.weight.dtype))  # W (x / s) = (W / s) x
    return {"l2": l2, "val_acc": acc, "l2_selection": how, "scaling": scaling,
            "refit_examples": len(y_all) if refit else len(y_train)}


register_protocol("linear-probe", LinearProbeConfig, takes_depth=False,
                  summary="every block frozen; logistic regression on cached features by "
                          "L-BFGS (L2 chosen on validation or by CV, then refitted on "
                          "train + val)")
