"""LogME: the log maximum evidence of a Bayesian linear model on the features.

You, Liu, Wang & Long, "LogME: Practical Assessment of Pre-trained Models for Transfer
Learning", ICML 2021; fixed-point solver from You et al., "Ranking and Tuning Pre-trained
Models", JMLR 2022.

For one target column y (n,) and features F (n, D), with prior w ~ N(0, alpha^-1 I_D) and
noise y | w ~ N(F w, beta^-1 I_n), the evidence is

    log p(y | alpha, beta) = D/2 log alpha + n/2 log beta - n/2 log 2 pi
                             - beta/2 ||F m - y||^2 - alpha/2 ||m||^2 - 1/2 log |A|,
    A = alpha I_D + beta F^T F,   m = beta A^-1 F^T y.

LogME maximises it over (alpha, beta) and reports the maximum divided by n, averaged over
the target columns (classification: one-vs-rest 0/1 columns of the labels; no centring, no
bias column). The maximiser satisfies gamma = sum_i beta s_i / (alpha + beta s_i),
alpha = gamma / ||m||^2, beta = (n - gamma) / ||F m - y||^2 (s_i the eigenvalues of F^T F);
the JMLR solver iterates lambda = alpha / beta through these equations.

Speed: F^T F (or F F^T when n < D) is reduced to tridiagonal form once and shared by every
column; each fixed-point step is then O(min(n, D)) per column: a banded solve when n >= D
(``_Banded``), sums over the eigenvalues and squared projections of y when n < D
(``_Spectral``). No D x D eigenvector matrix is ever formed.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from transferlab.errors import UserError
from transferlab.transferability._validate import (ArrayLike, as_features, as_labels,
                                                   check_finite, one_hot, to_numpy)

MAX_ITER = 500
TOL = 1e-10  # relative change of lambda: tight, so the maximum matches a direct optimiser
# n >= D: from this dimension on, banded solves per step beat the spectral form, whose
# eigenvectors cost O(D^2) memory and a D^2 K product; below it the spectral form's
# vectorised steps win (D = 128, 200 samples: 21 ms -> a few ms per LogME).
BANDED_MIN_DIM = 512
# sytrd below this size takes a millisecond or two: not worth threadpoolctl's ~4 ms
THREADS_MIN_DIM = 256


def _blas_threads(k: int):
    """The BLAS thread setting for reducing a k x k matrix: as configured on an idle
    machine, one thread on a busy one.

    sytrd is half matrix-vector products, each a thread barrier. With both cores free, two
    threads halve it (2,048: 0.49 -> 0.26 s); with a busy CPU OpenBLAS's spinning barriers
    made it take 8-15 s instead of 0.5 s single-threaded. The 1-minute load average is the
    cheap, portable signal of "busy".
    """
    if k < THREADS_MIN_DIM:
        return contextlib.nullcontext()
    try:
        busy = os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5
    except OSError:  # no load average on this platform: play safe
        busy = True
    return threadpool_limits(1) if busy else contextlib.nullcontext()


def _targets(labels: ArrayLike, n: int, regression: bool) -> np.ndarray:
    if not regression:
        y, c = as_labels(labels, n, min_per_class=2, why="logme")
        return one_hot(y, c)
    t = to_numpy(labels, "labels")
    t = t[:, None] if t.ndim == 1 else t
    if t.ndim != 2 or len(t) != n:
        raise UserError(f"labels has shape {tuple(t.shape)}: with regression=True allowed is "
                        f"(n_samples,) or (n_samples, n_targets) with n_samples={n} as in "
                        "the features")
    t = np.ascontiguousarray(t, dtype=np.float64)
    check_finite(t, "labels")
    return t


def _tridiagonalize(sym: np.ndarray, b: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sym (k, k) = Q T Q^T with T tridiagonal (LAPACK sytrd): returns T's diagonal (k,),
    off-diagonal (k-1,) and Q^T b (k, K), Q applied reflector by reflector (never formed).
    ``sym`` is overwritten."""
    k = len(sym)
    if k == 1:
        return sym[0].copy(), np.zeros(0), np.array(b, dtype=np.float64)
    with _blas_threads(k):
        lwork = int(scipy.linalg.lapack.dsytrd_lwork(k, lower=1)[0])
        a, diag, off, tau, info = scipy.linalg.lapack.dsytrd(sym, lower=1, lwork=lwork,
                                                             overwrite_a=1)
        if info != 0:
            raise RuntimeError(f"LAPACK dsytrd failed (info={info})")
        qb = np.array(b, dtype=np.float64)
        # Q = H_1..H_{k-1}, H_i = I - tau_i v v^T, v = (0.., 1, a[i+2:, i]): Q^T b = H_{k-1}..H_1 b
        for i in range(k - 1):
            v = a[i + 1:, i].copy()
            v[0] = 1.0
            qb[i + 1:] -= tau[i] * np.outer(v, v @ qb[i + 1:])
    return diag, off, qb


def _eig_projections(sym: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (k,) of the symmetric ``sym`` (k, k) and the projections (k, K) of the
    columns of ``b`` on its eigenvectors, without forming those eigenvectors (from
    ``THREADS_MIN_DIM`` on; smaller matrices go through ``numpy.linalg.eigh``).

    T = S diag(s) S^T (MRRR, O(k^2)) after ``_tridiagonalize``; the projections are
    S^T (Q^T b). This skips the k^3 back-transformation of a full ``eigh``: on 10,000 x 2,048
    features the whole LogME ran 1.35-1.5x faster than with ``numpy.linalg.eigh``.
    """
    if len(sym) < THREADS_MIN_DIM:  # small: LAPACK's eigh beats a Python reflector loop
        s, vecs = np.linalg.eigh(sym)
        return s, vecs.T @ b
    diag, off, qb = _tridiagonalize(sym, b)
    if len(diag) == 1:
        return diag, qb
    s, vecs = scipy.linalg.eigh_tridiagonal(diag, off, check_finite=False)
    return s, vecs.T @ qb


class _Spectral:
    """Fit terms from eigenvalues s (k,), squared projections z2 (k, K) and the part of y
    outside F's columns (K,): sums of positive terms, exact near a perfect fit."""

    def __init__(self, s: np.ndarray, z2: np.ndarray, outside: np.ndarray) -> None:
        self.s, self.z2, self.outside = s, z2, outside

    def terms(self, lam: np.ndarray, cols: np.ndarray):
        return _fit_terms(self.s, self.z2[:, cols], self.outside[cols], lam)


class _Banded:
    """Fit terms for n >= D from T = Q^T F^T F Q (tridiagonal) and c = Q^T F^T y, one banded
    Cholesky solve x = (T + lambda I)^-1 c per column and step (O(D)): ||m||^2 = ||x||^2,
    ||F m - y||^2 = ||y||^2 - x^T c - lambda ||x||^2. T's eigenvectors are never needed,
    which saves about a fifth of LogME's time on 10,000 x 2,048."""

    def __init__(self, s, diag, off, c, yy) -> None:
        self.s, self.diag, self.c, self.yy = s, diag, c, yy
        self.ab = np.zeros((2, len(diag)))
        self.ab[0, 1:] = off

    def terms(self, lam: np.ndarray, cols: np.ndarray):
        gamma = (self.s[:, None] / (self.s[:, None] + lam)).sum(0)
        m2, res = np.empty(len(lam)), np.empty(len(lam))
        for i, (l, j) in enumerate(zip(lam, np.flatnonzero(cols))):
            self.ab[1] = self.diag + l
            x = scipy.linalg.solveh_banded(self.ab, self.c[:, j], check_finite=False)
            m2[i] = x @ x
            res[i] = self.yy[j] - x @ self.c[:, j] - l * m2[i]
        return gamma, np.maximum(m2, 1e-300), np.maximum(res, 1e-300)


def _spectrum(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues s (k,) of F^T F, squared projections z^2 (k, K) of y on F's left singular
    vectors (k = min(n, D); directions with s ~ 0 get z = 0) and ||y||^2 - sum z^2 (K,), the
    squared norm of y's part outside F's column space."""
    n, d = f.shape
    if n >= d:
        # f.T @ f runs as one SYRK (half a matmul's flops); projections of F^T y = sqrt(s) z
        s, proj = _eig_projections(f.T @ f, f.T @ y)
        keep = s > s.max() * d * np.finfo(float).eps
        z2 = np.where(keep[:, None], proj ** 2 / np.where(keep, s, 1.0)[:, None], 0.0)
        outside = np.maximum((y ** 2).sum(0) - z2.sum(0), 0.0)
    else:
        s, proj = _eig_projections(f @ f.T, y)
        z2 = proj ** 2
        # the eigenvectors are a full basis of R^n: nothing lies outside. Exactly 0, not the
        # rounding of ||y||^2 - sum z^2, which beta ~ 1e16 near a perfect fit would blow up.
        outside = np.zeros(y.shape[1])
    return np.clip(s, 0.0, None), z2, outside


def _problem(f: np.ndarray, y: np.ndarray, banded: bool | None = None
             ) -> tuple[np.ndarray, _Spectral | _Banded]:
    """Eigenvalues of F^T F and the fit terms' evaluator: banded solves when n >= D >=
    ``BANDED_MIN_DIM`` (the large case; ``banded`` forces the choice when n >= D), else the
    spectral form."""
    n, d = f.shape
    if banded is None:
        banded = d >= BANDED_MIN_DIM
    if n < d or not banded:
        s, z2, outside = _spectrum(f, y)
        return s, _Spectral(s, z2, outside)
    diag, off, c = _tridiagonalize(f.T @ f, f.T @ y)
    s = np.clip(scipy.linalg.eigvalsh_tridiagonal(diag, off, check_finite=False)
                if len(diag) > 1 else diag, 0.0, None)
    return s, _Banded(s, diag, off, c, (y ** 2).sum(0))


def _fit_terms(s: np.ndarray, z2: np.ndarray, outside: np.ndarray,
               lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gamma, ||m||^2 and ||F m - y||^2 per column at lambda = alpha / beta."""
    denom = s[:, None] + lam
    gamma = (s[:, None] / denom).sum(0)
    m2 = np.maximum((s[:, None] * z2 / denom ** 2).sum(0), 1e-300)
    # y's part outside F's columns (0 when they span R^n), plus what the shrinkage leaves
    # of the part inside; the second is summed term by term: no cancellation near a fit
    res = outside + (lam ** 2 * z2 / denom ** 2).sum(0)
    return gamma, m2, np.maximum(res, 1e-300)


def _evidence(s: np.ndarray, fit, n: int, d: int, alpha: np.ndarray,
              beta: np.ndarray) -> np.ndarray:
    """log p(y | alpha, beta) per column, from the spectrum (m the posterior mean)."""
    _, m2, res = fit.terms(alpha / beta, np.ones(len(alpha), dtype=bool))
    # log|A| over all D dimensions: D - k of F^T F's eigenvalues are 0 when n < D
    logdet = np.log(alpha + beta * s[:, None]).sum(0) + (d - len(s)) * np.log(alpha)
    return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res - alpha / 2 * m2 - logdet / 2)


def fixed_point(s: np.ndarray, fit, n: int, n_cols: int, max_iter: int = MAX_ITER,
                tol: float = TOL) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) per column by the JMLR fixed point, all columns at once."""
    lam = np.ones(n_cols)
    # When F fits y exactly (n <= D), the evidence grows towards a finite limit as
    # beta -> inf and lambda decays geometrically: stop once lambda is negligible against
    # every eigenvalue, where the evidence no longer changes.
    negligible = 1e-14 * (s[s > 0].min() if (s > 0).any() else 1.0)
    active = np.ones(len(lam), dtype=bool)
    for _ in range(max_iter):
        gamma, m2, res = fit.terms(lam[active], active)
        new = (gamma / m2) / ((n - gamma) / res)
        old = lam[active]
        lam[active] = new
        # converged columns stay where they are (iterating them on would only add rounding)
        active[np.flatnonzero(active)[(np.abs(new - old) <= tol * old)
                                      | (new < negligible)]] = False
        if not active.any():
            break
    gamma, m2, res = fit.terms(lam, np.ones(n_cols, dtype=bool))
    alpha, beta = gamma / m2, (n - gamma) / res
    return alpha, beta


def _logme_without_features(y: np.ndarray, n: int) -> float:
    """LogME of all-zero features (a dead block): m = 0 and alpha drops out of the
    evidence, n/2 log beta - n/2 log 2 pi - beta/2 ||y||^2, maximal at beta = n / ||y||^2."""
    yy = np.maximum((y ** 2).sum(0), 1e-300)
    return float(np.mean(0.5 * np.log(n / yy) - 0.5 * np.log(2 * np.pi) - 0.5))


def logme(features: ArrayLike, labels: ArrayLike, regression: bool = False) -> float:
    """Mean per-sample log maximum evidence of a linear model on ``features`` for ``labels``.

    Args:
        features: (n_samples, dim) float.
        labels: classification: (n_samples,) class indices 0..C-1, every class with >= 2
            samples, scored one-vs-rest on 0/1 targets. ``regression=True``: real targets
            (n_samples,) or (n_samples, n_targets).
    Returns:
        LogME = mean over the C (or n_targets) columns of max_{alpha, beta} log p(y|F)/n.
        Higher is better; typically in [-2, 2] for classification.
    """
    f = as_features(features)
    n, d = f.shape
    y = _targets(labels, n, regression)
    if not np.any(f):
        return _logme_without_features(y, n)
    try:
        s, fit = _problem(f, y)
        alpha, beta = fixed_point(s, fit, n, y.shape[1])
    except np.linalg.LinAlgError:  # T + lambda I lost definiteness to rounding (lambda ~ 0)
        s, z2, outside = _spectrum(f, y)
        fit = _Spectral(s, z2, outside)
        alpha, beta = fixed_point(s, fit, n, y.shape[1])
    return float(np.mean(_evidence(s, fit, n, d, alpha, beta) / n))
