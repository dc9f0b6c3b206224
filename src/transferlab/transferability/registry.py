"""The estimators by name, with what each reads from the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transferlab.errors import UserError
from transferlab.transferability.hscore import h_score
from transferlab.transferability.leep import leep
from transferlab.transferability.logme import logme
from transferlab.transferability.nce import nce
from transferlab.transferability.reg_hscore import regularized_h_score
from transferlab.transferability.transrate import transrate


@dataclass(frozen=True)
class Estimator:
    """``fn(x, labels) -> float``; ``reads`` is what ``x`` is: "features" (n, dim) at a
    depth, "probs" (n, Z) the source head's softmax, or "hard" (n,) its argmax."""

    name: str
    fn: Callable[..., float]
    reads: str
    paper: str


ESTIMATORS: dict[str, Estimator] = {e.name: e for e in [
    Estimator("logme", logme, "features", "You et al. 2021/2022"),
    Estimator("leep", leep, "probs", "Nguyen et al. 2020"),
    Estimator("nce", nce, "hard", "Tran et al. 2019"),
    Estimator("hscore", h_score, "features", "Bao et al. 2019"),
    Estimator("reg_hscore", regularized_h_score, "features", "Ibrahim et al. 2022"),
    Estimator("transrate", transrate, "features", "Huang et al. 2022"),
]}


def get_estimator(name: str) -> Estimator:
    """The estimator registered under ``name`` (see ``ESTIMATORS``)."""
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise UserError(f"metric={name!r} is invalid: allowed are {', '.join(ESTIMATORS)} "
                        "(or all in the CLI); pass one of those names") from None
