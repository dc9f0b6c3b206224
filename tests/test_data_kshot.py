"""Honest k-shot sampling: k labelled examples per class in total, episodes resample them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferlab.api import transfer
from transferlab.data import from_arrays, make_task
from transferlab.data.sampling import shots_val_count
from transferlab.errors import UserError
from transferlab.models import build_model


@pytest.fixture(autouse=True)
def isolated(isolated_data):
    """Every test here runs on its own data layer (see conftest.isolated_data)."""


def coded(n_per_class=(40, 25, 60, 33), n_test=4):
    """(N, 3) vectors whose first feature is the example's index: values reveal identity."""
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.stack([np.arange(len(y)), y, np.zeros(len(y))], 1).astype(np.float64)
    y_test = np.repeat(np.arange(len(n_per_class)), n_test)
    return from_arrays(x, y, -np.ones((len(y_test), 3)), y_test, name="coded")


def support(task) -> set[int]:
    return set(task.train_index.tolist()) | set(task.val_index.tolist())


def per_class_total(task) -> list[int]:
    return torch.bincount(torch.cat([task.y_train, task.y_val]),
                          minlength=task.num_classes).tolist()


@pytest.mark.parametrize("k", [1, 3, 4, 5, 8, 13])
def test_k_shot_sees_exactly_k_labelled_examples_per_class(k):
    task = make_task(f"coded:per_class={k}", dataset=coded())
    assert per_class_total(task) == [k] * 4
    assert torch.bincount(task.y_val, minlength=4).tolist() == [k // 4 if k >= 4 else 0] * 4
    assert not set(task.train_index) & set(task.val_index)
    # the examples are the ones the indices name (first feature = index), train and val
    assert task.x_train[:, 0].long().tolist() == task.train_index.tolist()
    assert task.x_val[:, 0].long().tolist() == task.val_index.tolist()


def test_five_shot_default_split_and_explicit_validation_keys():
    ds = coded()
    five = make_task("coded:per_class=5", dataset=ds)
    assert per_class_total(five) == [5] * 4 and five.n_val == 4  # 4 train + 1 val per class
    none = make_task("coded:per_class=5:val_fraction=0.0", dataset=ds)
    assert none.n_val == 0 and support(none) == support(five)  # the same 5, all training
    half = make_task("coded:per_class=8:val_fraction=0.5", dataset=ds)
    assert per_class_total(half) == [8] * 4 and half.n_val == 16
    extra = make_task("coded:per_class=5:val_per_class=3", dataset=ds)  # explicitly more
    assert torch.bincount(extra.y_train).tolist() == [5] * 4
    assert torch.bincount(extra.y_val).tolist() == [3] * 4
    assert [shots_val_count(k, None) for k in range(1, 10)] == [0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_episodes_draw_other_support_sets_same_episode_same_set():
    ds = coded()
    draws = {e: make_task(f"coded:per_class=5:episode={e}", dataset=ds) for e in (0, 1, 2)}
    again = make_task("coded:per_class=5:episode=1", dataset=ds)
    assert support(again) == support(draws[1])
    np.testing.assert_array_equal(again.train_index, draws[1].train_index)
    assert torch.equal(again.x_train, draws[1].x_train)
    assert len({frozenset(support(t)) for t in draws.values()}) == 3
    for t in draws.values():
        assert per_class_total(t) == [5] * 4
        assert torch.equal(t.x_test, draws[0].x_test)  # the test split is never resampled
        np.testing.assert_array_equal(t.test_index, np.arange(16))
    assert make_task("coded:per_class=5:episode=0", dataset=ds).spec == draws[0].spec
    assert str(draws[0].spec) == "coded:per_class=5" and str(draws[2].spec) == \
        "coded:per_class=5:episode=2"
    # seed and episode are separate axes: each changes the draw
    assert support(make_task("coded:per_class=5:seed=1:episode=1", dataset=ds)) != \
        support(draws[1])
    fr = [make_task(f"coded:fraction=0.2:episode={e}", dataset=ds) for e in (0, 1)]
    assert support(fr[0]) != support(fr[1])


def test_fraction_validates_inside_the_fraction():
    ds = coded()
    task = make_task("coded:fraction=0.25", dataset=ds)
    sizes = [max(1, math.floor(0.25 * n + 0.5)) for n in (40, 25, 60, 33)]
    assert per_class_total(task) == sizes  # 10, 6, 15, 8: train + val inside the fraction
    assert torch.bincount(task.y_val).tolist() == [1, 1, 2, 1]


def test_full_data_keeps_the_ten_percent_validation():
    ds = coded()
    task = make_task("coded", dataset=ds)
    assert torch.bincount(task.y_val).tolist() == [4, 3, 6, 3]  # round(10%) of each class
    assert task.n_train + task.n_val == ds.n_train


def test_episode_needs_a_sample_and_is_validated():
    with pytest.raises(UserError, match=r"episode=1 is invalid: allowed is only with per_class "
                                        r"or fraction"):
        make_task("coded:episode=1", dataset=coded())
    with pytest.raises(UserError, match=r"episode=-1 is invalid: allowed is an integer >= 0"):
        make_task("coded:per_class=2:episode=-1", dataset=coded())
    with pytest.raises(UserError, match=r"per_class=26 is invalid: allowed is at most 25 for "
                                        r"class '1'"):
        make_task("coded:per_class=26", dataset=coded())


def test_training_copes_with_an_empty_validation_split():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 4)) + 4 * np.eye(3, 4)[y]
    task = make_task("blobs:per_class=3", dataset=from_arrays(x, y, name="blobs"))
    assert task.n_val == 0 and task.n_train == 9
    torch.manual_seed(0)
    model = build_model("mlp", 3, **task.model_kwargs, width=8, depth=2)
    for protocol in ("finetune", "linear-probe"):
        res = transfer(model, task, protocol, {"epochs": 3, "batch_size": 4, "device": "cpu"},
                       progress=False)
        assert res.metrics["outcome"] == "ok" and math.isfinite(res.metrics["test_nll"])
        if protocol == "finetune":  # no validation: the last epoch is kept
            assert res.metrics["best_epoch"] == res.metrics["epochs_run"] == 3


def pre_rework_rule(y, class_ids, spec):
    """The sampling before the k-shot rework (validation carved from each whole class first),
    re-implemented here to pin that the strings it still governs give the same examples."""
    train, val = [], []
    for c in class_ids:
        perm = np.random.default_rng([spec.seed, c, 7]).permutation(np.flatnonzero(y == c))
        n = len(perm)
        if spec.val_per_class is not None:
            n_val = spec.val_per_class
        else:
            frac = 0.1 if spec.val_fraction is None else spec.val_fraction
            n_val = min(max(int(np.floor(frac * n + 0.5)), 1 if frac > 0 else 0), n - 1)
        rest = perm[n_val:]
        if spec.per_class is not None:
            rest = rest[:spec.per_class]
        elif spec.fraction is not None:
            rest = rest[:max(1, int(np.floor(spec.fraction * len(rest) + 0.5)))]
        val.append(perm[:n_val])
        train.append(rest)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@pytest.mark.parametrize("text", [
    "coded", "coded:val_fraction=0.25:seed=2", "coded:val_fraction=0.0",
    "coded:per_class=5:val_per_class=3", "coded:fraction=0.5:val_per_class=2",
    "coded:classes=2,0:per_class=7:val_per_class=4:seed=3",
])
def test_strings_outside_the_k_shot_change_give_the_same_examples_as_before(text):
    ds = coded()
    task = make_task(text, dataset=ds)
    train, val = pre_rework_rule(ds.y_train, list(task.class_ids), task.spec)
    np.testing.assert_array_equal(task.train_index, train)
    np.testing.assert_array_equal(task.val_index, val)


def test_k_shot_without_validation_keys_is_the_intended_change():
    ds = coded()
    task = make_task("coded:per_class=5", dataset=ds)
    train, val = pre_rework_rule(ds.y_train, list(task.class_ids), task.spec)
    assert len(val) == 4 + 3 + 6 + 3 and task.n_val == 4  # 10% of each class before, now 1 of 5
