"""TaskSpec parsing and make_task: class subsets, halves, sampling, conversion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from transferlab.data import (ImageDataset, TaskSpec, from_arrays, make_task,
                              split_halves)
from transferlab.errors import UserError

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(autouse=True)
def isolated(isolated_data):
    """Every test here runs on its own data layer (see conftest.isolated_data)."""


def coded_dataset(n_per_class=(30,) * 6, n_test=5, classes=None, channels=1) -> ImageDataset:
    """Every image is filled with 10 * its class + a running id, so pixels reveal the source."""
    k = len(n_per_class)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.empty((len(y), 4, 4, channels), np.uint8)
    x[:] = (10 * y)[:, None, None, None]
    x[:, 0, 0, :] = np.arange(len(y))[:, None] % 256  # distinct images
    y_test = np.repeat(np.arange(k), n_test)
    x_test = np.empty((len(y_test), 4, 4, channels), np.uint8)
    x_test[:] = (10 * y_test)[:, None, None, None]
    return from_arrays(x, y, x_test, y_test, classes=classes, name="coded")


def raw(x: torch.Tensor) -> np.ndarray:
    """Undo the normalisation: float in [-1, 1] -> the original uint8 values."""
    return np.rint((x.numpy() * 0.5 + 0.5) * 255).astype(int)


@pytest.mark.parametrize("text", [
    "digits", "digits:size=16", "mnist:classes=0-4:per_class=100:size=32",
    "cifar10:classes=animals,vehicles:half=B:split=dissimilar",
    "kmnist:classes=7,2,5:fraction=0.25:val_per_class=3:channels=3:seed=4",
    "mnist:half=A:split_seed=3:val_fraction=0.0",
])
def test_parse_str_round_trip(text):
    spec = TaskSpec.parse(text)
    assert str(spec) == text
    assert TaskSpec.parse(str(spec)) == spec


def test_canonical_form_and_values():
    spec = TaskSpec.parse("mnist:classes=0,1,2,3,4,8,9:half=a:per_class=5")
    assert spec.classes == (0, 1, 2, 3, 4, 8, 9) and spec.half == "A" and spec.per_class == 5
    assert str(spec) == "mnist:classes=0-4,8,9:half=A:per_class=5"
    assert str(TaskSpec("digits", size=16)) == "digits:size=16"
    assert TaskSpec("mnist", classes=range(3)) == TaskSpec.parse("mnist:classes=0-2")
    assert TaskSpec("digits").effective_val_fraction == 0.1
    assert all(f.metadata.get("help") for f in dataclasses.fields(TaskSpec))


@pytest.mark.parametrize("text, match", [
    ("mnist:shots=5", r"key one of classes, half, split, split_seed, per_class, fraction"),
    ("mnist:per_class=five", r"per_class='five' is invalid: allowed is an integer"),
    ("mnist:per_class=0", r"per_class=0 is invalid: allowed is an integer >= 1"),
    ("mnist:per_class=5:fraction=0.5", "per_class and fraction both given"),
    ("mnist:val_fraction=0.2:val_per_class=3", "val_fraction and val_per_class both given"),
    ("mnist:split=dissimilar", "only apply with half=A or half=B"),
    ("mnist:half=C", r"half='C' is invalid: allowed is A or B"),
    ("mnist:channels=2", r"channels=2 is invalid: allowed is 1 or 3"),
    ("mnist:fraction=1.5", r"fraction=1.5 is invalid"),
    ("mnist:classes=1,1", "each class once"),
    ("mnist:classes=4-2", "low <= high"),
    ("mnist:size=8:size=9", "size is given twice"),
    ("size=8", "start with a dataset name"),
])
def test_parse_rejects(text, match):
    with pytest.raises(UserError, match=match):
        TaskSpec.parse(text)


def test_class_subset_relabels_in_given_order():
    ds = coded_dataset()
    task = make_task("coded:classes=4,1,3", dataset=ds)
    assert task.classes == ("4", "1", "3") and task.num_classes == 3
    for x, y in ((task.x_train, task.y_train), (task.x_val, task.y_val),
                 (task.x_test, task.y_test)):
        original = raw(x)[:, 0, 1, 1] // 10  # the class each image was made from
        np.testing.assert_array_equal(original, np.array([4, 1, 3])[y.numpy()])
    assert task.n_test == 15 and sorted(task.y_test.tolist()) == [0] * 5 + [1] * 5 + [2] * 5


def test_per_class_exact_nested_and_val_disjoint():
    # Encodes the honest k-shot rule (data/sampling.py): k labelled examples per class in
    # total; before it, validation was 10% of each whole class whatever per_class was.
    ds = coded_dataset(n_per_class=(30, 20, 40))
    t3 = make_task("coded:per_class=3:seed=1", dataset=ds)
    t6 = make_task("coded:per_class=6:seed=1", dataset=ds)
    assert torch.bincount(t3.y_train).tolist() == [3, 3, 3] and t3.n_val == 0  # k < 4
    assert torch.bincount(t6.y_train).tolist() == [5, 5, 5]  # floor(6/4) = 1 validates
    assert torch.bincount(t6.y_val).tolist() == [1, 1, 1]
    assert set(t3.train_index) < set(t6.train_index)  # training sets nested in k
    assert not set(t6.train_index) & set(t6.val_index)
    full = make_task("coded", dataset=ds)
    assert torch.bincount(full.y_val).tolist() == [3, 2, 4]  # full data: 10% of each class
    assert sorted([*full.train_index, *full.val_index]) == list(range(90))
    assert make_task("coded:per_class=3:seed=2", dataset=ds).train_index.tolist() != \
        t3.train_index.tolist()
    # explicit val_per_class: drawn besides the training examples (the Yosinski study's rule)
    vp = make_task("coded:per_class=3:val_per_class=2:seed=1", dataset=ds)
    assert torch.bincount(vp.y_train).tolist() == [3, 3, 3]
    assert torch.bincount(vp.y_val).tolist() == [2, 2, 2]
    fr = make_task("coded:fraction=0.5:val_per_class=2", dataset=ds)
    assert torch.bincount(fr.y_train).tolist() == [14, 9, 19]
    assert torch.bincount(fr.y_val).tolist() == [2, 2, 2]
    # fraction alone: validation carved inside the fraction (10% of 15, 10, 20)
    fo = make_task("coded:fraction=0.5", dataset=ds)
    assert torch.bincount(fo.y_train).tolist() == [13, 9, 18]
    assert torch.bincount(fo.y_val).tolist() == [2, 1, 2]


def test_test_split_untouched():
    ds = coded_dataset()
    a = make_task("coded", dataset=ds)
    b = make_task("coded:per_class=2:val_per_class=1:seed=9", dataset=ds)
    np.testing.assert_array_equal(a.test_index, np.arange(ds.n_test))
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(raw(a.x_test)[:, 0], ds.x_test[..., 0])


def test_normalisation_range_and_known_values():
    x = np.zeros((4, 2, 2), np.uint8)
    x[1], x[3] = 255, 128
    ds = from_arrays(x, [0, 1, 0, 1], x, [0, 1, 0, 1])
    task = make_task("arrays:val_fraction=0.0", dataset=ds)
    assert task.x_train.dtype == torch.float32 and task.y_train.dtype == torch.int64
    assert task.x_train[0].eq(-1).all() and task.x_train[1].eq(1).all()
    assert torch.allclose(task.x_train[3], torch.tensor((128 / 255 - 0.5) / 0.5), atol=1e-6)
    assert task.n_val == 0 and task.x_val.shape == (0, 1, 2, 2)


def test_too_many_shots_and_unknown_classes():
    ds = coded_dataset(n_per_class=(30, 5))
    with pytest.raises(UserError, match=r"per_class=6 is invalid: allowed is at most 5 for class "
                                        r"'1' \(5 training examples\)"):
        make_task("coded:per_class=6", dataset=ds)
    with pytest.raises(UserError, match=r"per_class=5 is invalid: allowed is at most 4 for class "
                                        r"'1' \(5 training examples, 1 held out"):
        make_task("coded:per_class=5:val_per_class=1", dataset=ds)
    with pytest.raises(UserError, match="val_per_class=5 is invalid.*fewer than the 5"):
        make_task("coded:val_per_class=5", dataset=ds)
    with pytest.raises(UserError, match=r"classes=7 is invalid: allowed is indices 0\.\.1"):
        make_task("coded:classes=7", dataset=ds)
    with pytest.raises(UserError, match=r"classes='zebra' is invalid.*names \['0', '1'\]"):
        make_task("coded:classes=zebra", dataset=ds)


def test_split_halves_disjoint_covering_deterministic():
    for n in (2, 7, 10):
        a, b = split_halves(n, "random", seed=3)
        assert not set(a) & set(b) and sorted(a + b) == list(range(n))
        assert len(a) == n - n // 2 and (a, b) == split_halves(n, "random", seed=3)
    assert len({split_halves(10, "random", seed=s) for s in range(6)}) > 1
    assert split_halves(list(CIFAR), "dissimilar") == ((2, 3, 4, 5, 6, 7), (0, 1, 8, 9))
    with pytest.raises(UserError, match="no predefined dissimilar halves.*pass explicit classes"):
        split_halves("digits", "dissimilar")


def test_halves_in_tasks_and_groups():
    ds = coded_dataset(n_per_class=(12,) * 10, n_test=2, classes=CIFAR)
    a, b = split_halves(ds, "random", seed=5)
    ta = make_task("coded:half=A:split_seed=5", dataset=ds)
    tb = make_task("coded:half=B:split_seed=5", dataset=ds)
    assert ta.classes == tuple(CIFAR[i] for i in a) and tb.classes == tuple(CIFAR[i] for i in b)
    assert make_task("coded:half=B:split=dissimilar", dataset=ds).classes == \
        ("airplane", "automobile", "ship", "truck")
    veh = make_task("coded:classes=vehicles,cat", dataset=ds)
    assert veh.classes == ("airplane", "automobile", "ship", "truck", "cat")
    sub = make_task("coded:classes=0-4:half=A:split_seed=1", dataset=ds)  # half of a subset
    ia, _ = split_halves(5, "random", seed=1)
    assert sub.classes == tuple(CIFAR[i] for i in ia)


def test_channels_and_resize():
    rgb = np.zeros((4, 4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    ds = from_arrays(rgb, [0, 1, 0, 1], rgb, [0, 1, 0, 1])
    grey = make_task("arrays:channels=1:val_fraction=0.0", dataset=ds)
    assert grey.in_channels == 1
    assert torch.allclose(grey.x_train, torch.tensor(0.299 * 2 - 1), atol=1e-6)
    g = from_arrays(np.arange(16, dtype=np.uint8).reshape(1, 4, 4).repeat(4, 0) * 10, [0, 1] * 2,
                    np.zeros((2, 4, 4), np.uint8), [0, 1])
    t3 = make_task("arrays:channels=3:size=8:val_fraction=0.0", dataset=g)
    assert t3.x_train.shape == (4, 3, 8, 8) and t3.image_size == 8 and t3.in_channels == 3
    assert torch.equal(t3.x_train[:, 0], t3.x_train[:, 2])
    assert t3.x_train.min() >= -1 and t3.x_train.max() <= 1
    assert torch.allclose(t3.x_test, torch.tensor(-1.0))  # a constant image stays constant


def test_digits_task_and_to():
    task = make_task("digits:size=16")
    assert task.n_train + task.n_val == 1198 and task.n_test == 599
    assert task.x_train.shape[1:] == (1, 16, 16) and task.image_size == 16
    assert task.to("cpu").x_train.device.type == "cpu"
    assert task.spec == TaskSpec("digits", size=16)


def test_make_task_keeps_built_tasks_but_hands_out_copies():
    """A second make_task of one spec reuses the built tensors (no second conversion) and
    returns copies: writing into one task's tensors leaves the next one alone."""
    from transferlab.data import clear_memory_cache
    from transferlab.data import tasks as tasks_mod

    clear_memory_cache()
    spec = "digits:classes=0-4:per_class=10:size=8"
    a = make_task(spec)
    assert len(tasks_mod._TASKS) == 1
    fp = a.fingerprint
    a.x_train.add_(1.0)
    a.y_train.zero_()
    b = make_task(spec)
    assert b.__dict__.get("_fingerprint") == fp  # carried over, not hashed again
    torch.testing.assert_close(b.x_train, a.x_train - 1.0)
    assert b.x_train.data_ptr() != a.x_train.data_ptr()
    from transferlab.data.tasks import task_fingerprint
    assert task_fingerprint(b) == fp  # the data itself, not a carried-over string
    clear_memory_cache()
    assert not tasks_mod._TASKS
