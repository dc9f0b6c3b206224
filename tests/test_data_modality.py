"""Tasks of every modality: vectors kept exactly, token sequences, one sampling for all."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.api import pretrain, transfer
from transferlab.data import Dataset, from_arrays, from_tokens, make_task
from transferlab.errors import UserError
from transferlab.inputs import TokenInputs
from transferlab.models import build_model

FAST = {"epochs": 10, "batch_size": 32, "device": "cpu"}


@pytest.fixture(autouse=True)
def isolated(isolated_data):
    """Every test here runs on its own data layer (see conftest.isolated_data)."""


def blobs(n_per_class=40, dim=6, k=3, seed=0):
    """float64 features: k well separated Gaussian blobs, values far outside [0, 1]."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(k), n_per_class))
    x = rng.normal(size=(len(y), dim)) * 0.7 + 3.0 * np.eye(k, dim)[y] - 1.234567891
    return x, y


def test_float64_vectors_are_kept_exactly_no_uint8_round_trip():
    x, y = blobs()
    ds = from_arrays(x[:90], y[:90], x[90:], y[90:], name="feats")
    assert ds.modality == "vector" and ds.input_shape == (6,) and ds.x_train.dtype == np.float32
    task = make_task("feats:classes=0-2:val_fraction=0.2", dataset=ds)
    assert task.modality == "vector" and task.input_shape == (6,)
    given = torch.from_numpy(x.astype(np.float32))  # the documented cast, nothing else
    assert torch.equal(task.x_train, given[:90][task.train_index])
    assert torch.equal(task.x_val, given[:90][task.val_index])
    assert torch.equal(task.x_test, given[90:])
    quantised = torch.from_numpy(np.rint(np.clip(x, 0, 1) * 255).astype(np.float32) / 255)
    assert not torch.equal(task.x_test, quantised[90:])
    assert task.x_train.min() < -1 and task.x_train.max() > 1  # no clamp to an image range
    with pytest.raises(UserError, match=r"in_channels; use task.input_shape"):
        task.in_channels
    with pytest.raises(UserError, match=r"image_size"):
        task.image_size
    assert task.model_kwargs == {"in_channels": 6, "image_size": 1}


def test_vector_inputs_checked():
    with pytest.raises(UserError, match=r"x='an array with NaN"):
        from_arrays(np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1])
    with pytest.raises(UserError, match=r"x='array of shape \(4, 0\)'"):
        from_arrays(np.zeros((4, 0)), [0, 1, 0, 1])
    with pytest.raises(UserError, match=r"x='bool array' is invalid"):
        from_arrays(np.zeros((4, 2), bool), [0, 1, 0, 1])
    with pytest.raises(UserError, match="x has 4 vectors but y has 3 labels"):
        from_arrays(np.zeros((4, 2)), [0, 1, 0])
    with pytest.raises(UserError, match="train examples are .* but test examples are"):
        from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 3)), [0, 1])
    ds = from_arrays(np.zeros((4, 2)), [0, 1, 0, 1], np.zeros((2, 2)), [0, 1], name="v")
    with pytest.raises(UserError, match=r"size=8 is invalid: allowed is only on image tasks; "
                                        r"dataset 'v' holds vector inputs; remove size"):
        make_task("v:size=8", dataset=ds)
    with pytest.raises(UserError, match=r"holds vector inputs of shape \(2,\), not images"):
        ds.image_shape


@pytest.mark.parametrize("protocol", ["linear-probe", "freeze:1", "finetune", "scratch"])
def test_mlp_trains_on_vectors_with_every_protocol(protocol):
    x, y = blobs(n_per_class=60)
    ds = from_arrays(x, y, name="feats")
    src = pretrain(make_task("feats:classes=0,1", dataset=ds), "mlp", FAST, progress=False,
                   width=16, depth=2).model
    target = make_task("feats:classes=0-2", dataset=ds)
    seen: list[torch.Tensor] = []
    src.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    res = transfer(src, target, protocol, FAST, seed=0, progress=False)
    assert res.metrics["outcome"] == "ok" and res.metrics["test_acc"] > 0.6  # chance 1/3
    # every input the first block saw is a row of the given arrays, cast to float32
    allowed = torch.from_numpy(x.astype(np.float32))
    rows = torch.cat(seen)
    assert len(rows) >= target.n_test
    assert (rows[:, None, :] == allowed[None]).all(-1).any(1).all()
    if protocol == "freeze:1":  # the frozen block is bit-identical to the source's
        for a, b in zip(src.blocks[0].parameters(), res.model.blocks[0].parameters()):
            assert torch.equal(a, b)


def test_build_model_from_a_vector_task_has_the_right_input_width():
    x, y = blobs(dim=11)
    task = make_task("feats", dataset=from_arrays(x, y, name="feats"))
    model = build_model("mlp", task.num_classes, **task.model_kwargs, width=8, depth=2)
    assert model(task.x_test).shape == (task.n_test, 3)
    assert model.blocks[0][1].in_features == 11


def tokens_ds(n_per_class=12, k=4, length=7, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    ids = rng.integers(1, 50, (len(y), length))
    mask = (np.arange(length)[None] < rng.integers(2, length + 1, len(y))[:, None]).astype(int)
    return from_tokens(ids * mask, mask, y, name="text"), ids * mask, mask, y


def test_token_tasks_subsets_halves_and_to():
    ds, ids, mask, y = tokens_ds()
    assert ds.modality == "tokens" and ds.input_shape == (7,)
    task = make_task("text:classes=3,1,2:half=A:split_seed=2:per_class=6", dataset=ds)
    assert task.modality == "tokens" and isinstance(task.x_train, TokenInputs)
    assert task.input_shape == (7,) and task.n_train + task.n_val == 6 * len(task.classes)
    assert task.x_train.input_ids.dtype == torch.int64
    # the ids and masks are the given ones, in the dataset's (carved) order
    assert torch.equal(task.x_train.input_ids, ds.x_train.input_ids[task.train_index])
    assert torch.equal(task.x_val.attention_mask, ds.x_train.attention_mask[task.val_index])
    assert torch.equal(task.x_test.input_ids, ds.x_test.input_ids[task.test_index])
    moved = task.to("cpu")
    assert isinstance(moved.x_test, TokenInputs) and moved.x_test.device.type == "cpu"
    assert moved.fingerprint == task.fingerprint
    with pytest.raises(UserError, match=r"channels=3 is invalid: allowed is only on image tasks"):
        make_task("text:channels=3", dataset=ds)
    with pytest.raises(UserError, match="wrap a text encoder"):
        task.model_kwargs
    all_ones = from_tokens(ids, None, y, name="t2")
    assert int(all_ones.x_train.attention_mask.min()) == 1


def test_token_inputs_checked():
    with pytest.raises(UserError, match=r"input_ids='float64 tensor"):
        from_tokens(np.zeros((4, 3)), None, [0, 1, 0, 1])
    with pytest.raises(UserError, match=r"input_ids='ids containing -1'"):
        from_tokens(np.full((4, 3), -1), None, [0, 1, 0, 1])
    with pytest.raises(UserError, match=r"input_ids mask=.*0/1 attention mask"):
        from_tokens(np.zeros((4, 3), int), np.full((4, 3), 2), [0, 1, 0, 1])


def test_sampling_is_identical_across_modalities():
    """Same labels -> the same train/val/test indices, whatever the inputs are."""
    rng = np.random.default_rng(1)
    y = rng.permutation(np.repeat(np.arange(6), 15))
    y_test = np.repeat(np.arange(6), 3)
    made = [from_arrays(rng.integers(0, 256, (90, 4, 4), dtype=np.uint8), y,
                        np.zeros((18, 4, 4), np.uint8), y_test, name="d"),
            from_arrays(rng.normal(size=(90, 5)), y, np.zeros((18, 5)), y_test, name="d"),
            from_tokens(rng.integers(0, 9, (90, 3)), None, y, np.zeros((18, 3), int), None,
                        y_test, name="d")]
    assert [d.modality for d in made] == ["image", "vector", "tokens"]
    for text in ("d", "d:classes=4,0,2,5:half=B:per_class=9:episode=3", "d:fraction=0.4",
                 "d:per_class=4:val_per_class=2:seed=5"):
        tasks = [make_task(text, dataset=d) for d in made]
        for attr in ("train_index", "val_index", "test_index"):
            for t in tasks[1:]:
                np.testing.assert_array_equal(getattr(t, attr), getattr(tasks[0], attr))
        assert all(torch.equal(t.y_train, tasks[0].y_train) for t in tasks)
        assert len({t.fingerprint for t in tasks}) == 3


def test_dataset_validates_each_modality():
    with pytest.raises(UserError, match=r"must be a \(N, D\) float32 array"):
        Dataset("v", np.zeros((2, 3), np.float64), np.array([0, 1]), np.zeros((2, 3)),
                np.array([0, 1]), ("a", "b"), "test", modality="vector")
    ids = TokenInputs(torch.zeros(2, 3, dtype=torch.int32), torch.ones(2, 3))
    with pytest.raises(UserError, match=r"must be a TokenInputs with \(N, L\) int64"):
        Dataset("t", ids, np.array([0, 1]), ids, np.array([0, 1]), ("a", "b"), "test")


def test_npz_of_vectors_is_a_vector_dataset(tmp_path):
    x, y = blobs(n_per_class=10, dim=4)
    np.savez(tmp_path / "emb.npz", x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
    task = make_task(f"{tmp_path / 'emb.npz'}:per_class=4")
    assert task.modality == "vector" and task.input_shape == (4,)
    assert torch.equal(task.x_test, torch.from_numpy(x[:6].astype(np.float32)))
    with pytest.raises(UserError, match=r"size=8 is invalid: allowed is only on image tasks"):
        make_task(f"{tmp_path / 'emb.npz'}:size=8")
