"""``synthetic``: the correlated hidden-manifold model, a source and a target of known relation.

Gerace et al. (2022, 2023) study transfer in a generative model whose source-target relation
is set by hand. Here (``d`` = ``latent``, ``D`` = ``dim``, ``H`` = ``hidden``):

* latent ``c ~ N(0, I_d)``, one fresh draw per example;
* inputs ``x = tanh(F c / sqrt(d))`` with ``F`` (D, d) standard Gaussian; with ``hidden=H > 0``
  a second generator layer makes the features hierarchical:
  ``x = tanh(F2 tanh(F1 c / sqrt(d)) / sqrt(H))``, ``F1`` (H, d), ``F2`` (D, H);
* labels from a teacher on the latent: ``n_classes=2``: ``y = [w . c / |w| + noise * e > 0]``,
  ``w`` (d,) Gaussian; ``n_classes=K > 2``: ``y = argmax_k(w_k . c / |w_k| + noise * e_k)``,
  ``W`` (K, d); ``e`` standard normal. Each pre-activation is exactly N(0, 1), so ``noise`` is a
  noise-to-signal ratio: the sign teacher flips a label with probability arctan(noise) / pi.

``role=target`` derives its generator from the source's (same ``gen_seed``):
``F_t = eta F + sqrt(1 - eta^2) Xi`` (every generator layer), ``w_t = q w + sqrt(1 - q^2) xi``
(each teacher row), and a fraction ``rho`` of the latent directions is replaced:
``round(rho * d)`` columns of ``F_t`` (of ``F1_t`` when hierarchical), chosen by a seeded
permutation, are fresh Gaussians independent of the source. So ``E[F_ij F_t,ij] = eta`` on the
kept columns and 0 on replaced ones, ``E[w_i w_t,i] = q``, every entry has unit variance, and
``eta = q = 1, rho = 0`` gives the source's generator exactly (new examples).

Splits: the ``n`` training examples are the task's labelled examples (the task's validation
split is carved from them: 10% per class by default, ``val_fraction`` changes it); the test
split is a fixed ``n_test`` (default 4,000) drawn from its own stream, so accuracies at a 1-point
resolution are measurable (binomial s.e. <= 0.8 points). Example streams are nested in ``n``:
the first 200 examples of ``n=1000`` are those of ``n=200``. Everything is a pure function of
the keys: no files, no global RNG.

Task strings: ``synthetic:role=source:n=10000``, ``synthetic:role=target:eta=0.5:n=200``,
``synthetic:role=target:q=0.8:rho=0.25:hidden=64:gen_seed=3:n=500:seed=1``. The generic ``seed``
key keeps its meaning (which examples validate); ``gen_seed`` picks the generator and data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from transferlab.data.arrays import from_arrays
from transferlab.data.dataset import Dataset
from transferlab.data.registry import SourceKeys, register_source
from transferlab.errors import bad_value

__all__ = ["SyntheticKeys", "Generator", "generator", "sample", "load_synthetic"]

# Stream tags: each random object has its own numpy stream seeded by (gen_seed, tag, ...), so a
# key that changes one object (eta, n, ...) leaves every other object bit-identical.
_F, _XI, _W, _WXI, _PERM, _FRESH, _LATENT, _NOISE = range(1, 9)
_SPLITS = {"train": 0, "test": 1}
_ROLES = ("source", "target")
_MAX_VALUES = 2_000_000_000  # floats one load may generate: (n + n_test) * (dim + hidden)


def _help(text: str) -> dict:
    return {"help": text}


def _int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
            high is not None and value > high):
        top = f"..{high}" if high is not None else " or more"
        raise bad_value(name, value, f"an integer {low}{top}")


def _unit(name: str, value, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise bad_value(name, value, "a number in [0, 1]", fix)


@dataclass(frozen=True)
class SyntheticKeys(SourceKeys):
    """Keys of the ``synthetic`` source (see the module docstring for the model)."""

    role: str = field(default="source", metadata=_help(
        "source (generator F, teacher w) or target (F_t, w_t correlated with them by eta, q, "
        "rho)"))
    dim: int = field(default=100, metadata=_help("input dimension D (x is (N, D) float32)"))
    latent: int = field(default=20, metadata=_help("latent dimension d (c ~ N(0, I_d))"))
    hidden: int = field(default=0, metadata=_help(
        "width of a second generator layer (hierarchical features); 0 = one layer"))
    n_classes: int = field(default=2, metadata=_help(
        "2: sign teacher sign(w . c); K > 2: argmax(W c) over K teacher rows"))
    eta: float = field(default=1.0, metadata=_help(
        "target only: feature-map correlation, F_t = eta F + sqrt(1 - eta^2) Xi"))
    q: float = field(default=1.0, metadata=_help(
        "target only: teacher correlation, w_t = q w + sqrt(1 - q^2) xi"))
    rho: float = field(default=0.0, metadata=_help(
        "target only: fraction of latent directions (columns of F) replaced by fresh ones"))
    n: int = field(default=1000, metadata=_help(
        "labelled training examples (validation is carved from them; nested in n)"))
    n_test: int = field(default=4000, metadata=_help("test examples (a fixed, separate draw)"))
    noise: float = field(default=0.0, metadata=_help(
        "std of Gaussian noise on the teacher's N(0, 1) pre-activation (P(flip) = "
        "arctan(noise) / pi for 2 classes)"))
    gen_seed: int = field(default=0, metadata=_help(
        "seed of the generator, teacher, perturbations and examples (source and target of one "
        "gen_seed are a pair)"))

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise bad_value("role", self.role, "source or target")
        _int("dim", self.dim, 1)
        _int("latent", self.latent, 1)
        _int("hidden", self.hidden, 0)
        _int("n_classes", self.n_classes, 2, 1000)
        if self.n == 0:
            raise bad_value("n", 0, "an integer >= 1 (training examples)",
                            "ask for at least one example per class")
        _int("n", self.n, 1)
        _int("n_test", self.n_test, 1)
        _int("gen_seed", self.gen_seed, 0)
        for name in ("eta", "q", "rho"):
            _unit(name, getattr(self, name), f"e.g. {name}=0.5")
        if self.role == "source":
            for name, default in (("eta", 1.0), ("q", 1.0), ("rho", 0.0)):
                if getattr(self, name) != default:
                    raise bad_value(name, getattr(self, name), "only with role=target (the "
                                    "source is the unperturbed generator)",
                                    f"add role=target or remove {name}")
        if (isinstance(self.noise, bool) or not isinstance(self.noise, (int, float))
                or not math.isfinite(self.noise) or self.noise < 0):
            raise bad_value("noise", self.noise, "a finite number >= 0")
        if self.n < self.n_classes:
            raise bad_value("n", self.n, f"at least n_classes={self.n_classes} examples",
                            "ask for more examples or fewer classes")
        if (self.n + self.n_test) * (self.dim + self.hidden + self.latent) > _MAX_VALUES:
            raise bad_value("n", self.n, f"(n + n_test) * (dim + hidden + latent) <= "
                            f"{_MAX_VALUES:,} values (memory)", "use fewer examples or a "
                            "smaller dim")

    @property
    def replaced(self) -> int:
        """How many latent directions the target replaces: round(rho * latent)."""
        return int(math.floor(self.rho * self.latent + 0.5)) if self.role == "target" else 0


@dataclass(frozen=True)
class Generator:
    """One role's generator: ``maps`` [(H, d), (D, H)] or [(D, d)] float64, first layer first;
    ``teacher`` (d,) for 2 classes, (K, d) for K > 2; ``replaced`` column indices of maps[0]."""

    maps: tuple[np.ndarray, ...]
    teacher: np.ndarray
    replaced: np.ndarray


def _rng(keys: SyntheticKeys, *tags: int) -> np.random.Generator:
    return np.random.default_rng([keys.gen_seed, *tags])


def _mix(a: np.ndarray, b: np.ndarray, corr: float) -> np.ndarray:
    return corr * a + math.sqrt(max(0.0, 1.0 - corr * corr)) * b


def generator(keys: SyntheticKeys) -> Generator:
    """The feature maps and teacher of ``keys.role`` (the source's when role=source)."""
    shapes = ([(keys.hidden, keys.latent), (keys.dim, keys.hidden)] if keys.hidden
              else [(keys.dim, keys.latent)])
    maps = [_rng(keys, _F, i).standard_normal(s) for i, s in enumerate(shapes)]
    t_shape = (keys.latent,) if keys.n_classes == 2 else (keys.n_classes, keys.latent)
    teacher = _rng(keys, _W).standard_normal(t_shape)
    replaced = np.zeros(0, np.int64)
    if keys.role == "target":
        maps = [_mix(m, _rng(keys, _XI, i).standard_normal(m.shape), keys.eta)
                for i, m in enumerate(maps)]
        teacher = _mix(teacher, _rng(keys, _WXI).standard_normal(t_shape), keys.q)
        replaced = np.sort(_rng(keys, _PERM).permutation(keys.latent)[:keys.replaced])
        if len(replaced):
            maps[0][:, replaced] = _rng(keys, _FRESH).standard_normal(
                (maps[0].shape[0], len(replaced)))
    return Generator(tuple(maps), teacher, replaced)


def sample(keys: SyntheticKeys, split: str, gen: Generator | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x (N, D) float32, y (N,) int64, c (N, d) float64) of ``split`` ("train": N = n,
    "test": N = n_test). Rows are a prefix-stable stream: a larger N extends a smaller one."""
    if split not in _SPLITS:
        raise bad_value("split", split, "train or test")
    gen = generator(keys) if gen is None else gen
    count = keys.n if split == "train" else keys.n_test
    role = _ROLES.index(keys.role)
    # numpy fills row by row from one stream, so the first rows do not depend on count
    c = _rng(keys, _LATENT, role, _SPLITS[split]).standard_normal((count, keys.latent))
    h, width = c, keys.latent
    for m in gen.maps:
        h = np.tanh(h @ m.T / math.sqrt(width))
        width = m.shape[0]
    rows = np.atleast_2d(gen.teacher)
    # each row scaled to unit norm: every pre-activation is exactly N(0, 1), so `noise` is a
    # signal-to-noise ratio (P(flip) = arctan(noise) / pi for the sign teacher)
    pre = c @ (rows / np.linalg.norm(rows, axis=1, keepdims=True)).T  # (N, 1) or (N, K)
    if keys.noise:
        pre = pre + keys.noise * _rng(keys, _NOISE, role, _SPLITS[split]).standard_normal(
            pre.shape)
    y = (pre[:, 0] > 0) if keys.n_classes == 2 else pre.argmax(1)
    return h.astype(np.float32), y.astype(np.int64), c


def load_synthetic(keys: SyntheticKeys, paths, progress: bool) -> Dataset:
    """The ``synthetic`` source's loader: train (n) and test (n_test) splits as vectors."""
    gen = generator(keys)
    x, y, _ = sample(keys, "train", gen)
    x_te, y_te, _ = sample(keys, "test", gen)
    missing = sorted(set(range(keys.n_classes)) - set(y.tolist()))
    if missing:
        raise bad_value("n", keys.n, f"enough examples that every class occurs (classes "
                        f"{missing} drew none)", "ask for more examples")
    ds = from_arrays(x, y, x_te, y_te, classes=[str(i) for i in range(keys.n_classes)],
                     name="synthetic")
    desc = ", ".join(f"{k}={v}" for k, v in keys.given().items()) or "defaults"
    return Dataset("synthetic", ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.classes,
                   f"correlated hidden-manifold model ({desc}); {keys.n} train, "
                   f"{keys.n_test} test", "vector")


register_source("synthetic", load_synthetic, keys=SyntheticKeys,
                description="correlated hidden-manifold model: source/target pairs with "
                            "tunable correlation (eta, q, rho); no files",
                modality="vector")
