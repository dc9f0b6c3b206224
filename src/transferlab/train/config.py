"""``TrainConfig``: the training budget and optimiser settings of one run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from transferlab.errors import UserError, bad_value


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Settings of one training run; every field has help text (``TrainConfig.help()``)."""

    epochs: int = _help("passes over the training set (0 leaves the model as initialised)", 10)
    min_steps: int = _help(
        "at least this many optimiser steps: when epochs x steps per epoch is fewer (10 "
        "epochs of 40 examples are 10 steps), epochs are raised to reach it, with a notice; "
        "0 trains exactly `epochs`; epochs=0 is never raised", 100)
    batch_size: int = _help("examples per optimisation step", 128)
    optimizer: str = _help("'sgd' (with momentum) or 'adamw'", "sgd")
    lr: float = _help("learning rate of the head and of re-initialised blocks", 0.05)
    momentum: float = _help("SGD momentum", 0.9)
    weight_decay: float = _help("L2 weight decay on weight matrices (not on biases or norms)",
                                5e-4)
    schedule: str = _help("'cosine', 'step' (x0.1 at 50% and 75%) or 'none'", "cosine")
    patience: int | None = _help(
        "early stopping: stop after this many epochs without a better validation accuracy and "
        "restore the best weights (None trains all epochs, keeping the best weights)", None)
    lr_mult: float | None = _help(
        "backbone learning rate = lr_mult x lr for pretrained blocks that train (the one "
        "home of this setting; None: the protocol's default, 0.1 for finetune, 1.0 "
        "otherwise, resolved into the run's recorded config and a sweep's trial key)", None)
    layer_decay: float | None = _help(
        "layer-wise lr decay: pretrained block i of L trains at lr_mult x decay^(L-1-i)", None)
    crop_padding: int = _help("augmentation: random crop after zero padding by this many px", 0)
    hflip: bool = _help("augmentation: random horizontal flip", False)
    device: str = _help("'auto' (cuda if available), 'cpu', 'cuda' or 'cuda:N'", "auto")
    bf16: bool = _help("bf16 autocast on CUDA (ignored on CPU)", True)
    channels_last: bool = _help(
        "keep 4-D activations channels_last (NHWC) on every device: 1.2-2x faster conv and "
        "pooling steps on CPU, tensor-core friendly on CUDA; results change only by float "
        "rounding. Set False for a wrapped module that calls .view() on its activations",
        True)
    max_grad_norm: float | None = _help("clip the gradient norm to this (None: no clipping)",
                                        None)
    l2: float | None = _help(
        "linear-probe L2 penalty (None picks it on the validation set from a small grid)", None)

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise bad_value("epochs", self.epochs, "an integer >= 0")
        if isinstance(self.min_steps, bool) or not isinstance(self.min_steps, int) \
                or self.min_steps < 0:
            raise bad_value("min_steps", self.min_steps, "an integer >= 0",
                            "0 trains exactly `epochs` epochs")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad_value("batch_size", self.batch_size, "an integer >= 1")
        if self.optimizer not in ("sgd", "adamw"):
            raise bad_value("optimizer", self.optimizer, "'sgd' or 'adamw'")
        if self.schedule not in ("cosine", "step", "none"):
            raise bad_value("schedule", self.schedule, "'cosine', 'step' or 'none'")
        # Every number is checked for finiteness first: NaN compares False with everything,
        # so "lr > 0"-style checks alone let NaN and inf through to a silently NaN model.
        for name in ("lr", "momentum", "weight_decay", "lr_mult", "layer_decay", "l2",
                     "max_grad_norm"):
            value = getattr(self, name)
            if value is None and name not in ("lr", "momentum", "weight_decay"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise bad_value(name, value, "a finite number" + (
                    " or None" if name not in ("lr", "momentum", "weight_decay") else ""))
        if not self.lr > 0:
            raise bad_value("lr", self.lr, "a number > 0", "try 0.05 for SGD or 1e-3 for AdamW")
        if self.weight_decay < 0:
            raise bad_value("weight_decay", self.weight_decay, "a number >= 0")
        if not 0 <= self.momentum < 1:
            raise bad_value("momentum", self.momentum, "a number in [0, 1)")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(
                self.patience, int) or self.patience < 1):
            raise bad_value("patience", self.patience, "None or an integer >= 1")
        if self.lr_mult is not None and self.lr_mult < 0:
            raise bad_value("lr_mult", self.lr_mult, "None or a number >= 0")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise bad_value("layer_decay", self.layer_decay, "None or a number in (0, 1]")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise bad_value("max_grad_norm", self.max_grad_norm, "None or a number > 0",
                            "omit it for no clipping")
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise bad_value("crop_padding", self.crop_padding, "an integer >= 0")
        if self.l2 is not None and self.l2 < 0:
            raise bad_value("l2", self.l2, "None or a number >= 0")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise bad_value("device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UserError(f"train config keys {unknown} are invalid: allowed are "
                            f"{sorted(names)}; check the spelling")
        return cls(**d)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}

    def epochs_for(self, n_train: int) -> int:
        """The epochs a run on ``n_train`` examples trains: ``epochs``, raised so that it
        takes at least ``min_steps`` optimiser steps (``epochs=0`` stays 0)."""
        steps_per_epoch = max(1, math.ceil(n_train / self.batch_size))
        if self.epochs == 0 or self.epochs * steps_per_epoch >= self.min_steps:
            return self.epochs
        return math.ceil(self.min_steps / steps_per_epoch)

    @property
    def augment(self) -> bool:
        return self.crop_padding > 0 or self.hflip

    def resolved_device(self):
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise bad_value("device", self.device, "'cpu' on this machine (no CUDA device)",
                            "pass --device cpu or auto")
        return torch.device(self.device)
