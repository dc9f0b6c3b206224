"""Training: the config, the loop, evaluation."""

from transferlab.train.config import TrainConfig
from transferlab.train.loop import FitResult, build_optimizer, evaluate, fit, set_train_mode

__all__ = ["FitResult", "TrainConfig", "build_optimizer", "evaluate", "fit", "set_train_mode"]
