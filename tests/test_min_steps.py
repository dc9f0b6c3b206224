"""``TrainConfig.min_steps``: a budget in epochs that means something on small data.

Ten epochs of 40 examples in batches of 128 are ten optimiser steps: ``freeze:1`` and
``bn-only`` then end at chance on digits k = 10 while the linear probe (a direct solver)
reaches 0.8. ``min_steps`` (default 100) raises the epochs to reach that many steps.
"""

from __future__ import annotations

import warnings

import pytest

import transferlab as tl
from transferlab.errors import UserError
from transferlab.train import TrainConfig
from transferlab.train import loop

pytestmark = pytest.mark.usefixtures("one_thread", "real_min_steps")


@pytest.mark.parametrize("epochs, n, batch, min_steps, want", [
    (10, 40, 128, 100, 100),   # 1 step per epoch: 100 epochs
    (10, 400, 128, 100, 25),   # 4 steps per epoch: ceil(100 / 4)
    (10, 4000, 128, 100, 10),  # 32 steps per epoch: already 320 steps
    (10, 40, 128, 0, 10),      # 0: exactly `epochs`
    (0, 40, 128, 100, 0),      # 0 epochs: the model as initialised, never raised
    (3, 0, 128, 100, 100),     # no data: one (empty) step per epoch, no division by zero
])
def test_epochs_for(epochs, n, batch, min_steps, want):
    cfg = TrainConfig(epochs=epochs, batch_size=batch, min_steps=min_steps)
    assert cfg.epochs_for(n) == want


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_min_steps_is_checked(bad):
    with pytest.raises(UserError, match="min_steps"):
        TrainConfig(min_steps=bad)


def test_help_and_recorded_config():
    assert "optimiser steps" in TrainConfig.help()["min_steps"]
    assert TrainConfig().to_dict()["min_steps"] == 100


def test_the_suite_trains_exact_epochs_unless_a_test_asks(request):
    """tests/conftest.py: the shipped default here (real_min_steps), 0 elsewhere."""
    import conftest

    assert conftest._MIN_STEPS_DEFAULT == [100]


@pytest.fixture(scope="module")
def source():
    return tl.pretrain(tl.make_task("digits:classes=0-4"), arch="mlp",
                       train={"epochs": 3, "min_steps": 0}, width=32, depth=2,
                       progress=False).model


def test_small_data_trains_min_steps_and_records_them(source):
    """The 'first hour' case: digits k = 10 (40 training examples, one batch)."""
    task = tl.make_task("digits:classes=5-9:per_class=10")
    loop._NOTICED.clear()
    with pytest.warns(UserWarning, match="min_steps=100") as caught:
        res = tl.transfer(source, task, "freeze:1", train={"epochs": 10}, progress=False)
    assert len([w for w in caught if "min_steps" in str(w.message)]) == 1
    assert res.metrics["steps"] == 100 and res.metrics["epochs_run"] == 100
    assert res.config["train"]["min_steps"] == 100
    with warnings.catch_warnings():  # the same budget again: said once, not per run
        warnings.simplefilter("error")
        tl.transfer(source, task, "freeze:1", train={"epochs": 10}, progress=False)
    exact = tl.transfer(source, task, "freeze:1", train={"epochs": 10, "min_steps": 0},
                        progress=False)
    assert exact.metrics["steps"] == 10
    # 100 steps learn what 10 did not (5 classes: chance 0.2)
    assert res.metrics["test_acc"] > exact.metrics["test_acc"] + 0.1
    probe = tl.transfer(source, task, "linear-probe", progress=False)
    assert probe.metrics["steps"] == 0  # a direct solver takes no optimiser steps


def test_advisor_uses_the_loops_rule():
    from transferlab.advise.budgets import epochs_for

    for n in (10, 40, 64, 65, 1000):
        assert epochs_for(n, 10, 100, 64) == \
            TrainConfig(epochs=10, min_steps=100, batch_size=64).epochs_for(n)
    assert epochs_for(1, 10, 10_000, 64) == 200  # the advisor's own cap stays
