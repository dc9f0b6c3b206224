"""Loaders: IDX files, KMNIST npz, arrays, digits, the registry, data dirs and status."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from transferlab.cli import main as cli_main
from transferlab.data import (clear_memory_cache, data_dirs, dataset_status, from_arrays,
                              load_dataset)
from transferlab.errors import UserError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def isolated(isolated_data):
    """Every test here runs on its own data layer (see conftest.isolated_data)."""


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic if magic is not None else 0x800 + array.ndim
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def write_mnist(root: Path, n_train=12, n_test=6, hw=(4, 3), seed=0, gz=True, labels=None):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8)
        if labels is None else labels,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    (root / "mnist").mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        blob = idx_bytes(a)
        if gz:
            (root / "mnist" / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (root / "mnist" / name).write_bytes(blob)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_known_arrays_read_back_exactly(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
    assert ds.x_train.shape == (12, 4, 3, 1) and ds.y_train.dtype == np.int64
    assert ds.classes == tuple(str(i) for i in range(10))


def test_idx_truncated_gz_names_file_and_says_redownload(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt"
                                        r".*re-download"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_wrong_magic_and_short_data(tmp_path):
    write_mnist(tmp_path)
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    images = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    labels_blob = labels.read_bytes()
    labels.write_bytes(images.read_bytes())  # an image file where labels belong
    with pytest.raises(UserError, match="magic number is 2051, expected 2049"):
        load_dataset("mnist", data_dir=tmp_path)
    labels.write_bytes(labels_blob)
    blob = idx_bytes(np.zeros((12, 4, 3), np.uint8))[:-5]  # header promises 5 more bytes
    images.write_bytes(gzip.compress(blob))
    with pytest.raises(UserError, match=r"header says \(12, 4, 3\) = 144 bytes.*holds 139"):
        load_dataset("mnist", data_dir=tmp_path)


def test_idx_length_mismatch_and_label_out_of_range(tmp_path):
    write_mnist(tmp_path, labels=np.zeros(11, np.uint8))
    with pytest.raises(UserError, match="holds 12 images but .* holds 11 labels"):
        load_dataset("mnist", data_dir=tmp_path)
    labels = (np.arange(12) % 10).astype(np.uint8)
    labels[3] = 12
    write_mnist(tmp_path, labels=labels)
    with pytest.raises(UserError, match=r"y_train contains label 12; allowed is 0\.\.9"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_dataset_says_what_and_where(tmp_path):
    with pytest.raises(UserError, match=r"'mnist' not found: need \{train-images-idx3-ubyte"
                                        r".*looked in .*mnist.*--data-dir.*TRANSFERLAB_DATA"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(UserError, match="no data directory is set"):
        load_dataset("kmnist")
    with pytest.raises(UserError, match="not a known name .*digits, mnist, kmnist, cifar10"):
        load_dataset("no-such-thing")


def test_data_dirs_env_pathsep_and_flat_layout(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    write_mnist(b)
    for f in os.listdir(b / "mnist"):  # flat layout: DIR/<file>
        os.replace(b / "mnist" / f, b / f)
    monkeypatch.setenv("TRANSFERLAB_DATA", f"{a}{os.pathsep}{b}")
    assert data_dirs() == [a, b]
    assert data_dirs(str(a)) == [a]
    assert load_dataset("mnist").n_train == 12


def test_lru_returns_same_object_until_file_changes(tmp_path):
    write_mnist(tmp_path)
    first = load_dataset("mnist", data_dir=tmp_path)
    assert load_dataset("mnist", data_dir=tmp_path) is first
    write_mnist(tmp_path, seed=1)
    os.utime(tmp_path / "mnist" / MNIST_FILES[0], ns=(1, 1))  # make sure the stamp differs
    second = load_dataset("mnist", data_dir=tmp_path)
    assert second is not first
    assert not np.array_equal(second.x_train, first.x_train)


def test_kmnist_npz_carves_stratified_test(tmp_path):
    y = np.repeat(np.arange(10), 10).astype(np.uint8)
    x = np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8)
    (tmp_path / "kmnist").mkdir()
    np.savez_compressed(tmp_path / "kmnist" / "kmnist-test-imgs.npz", x)
    np.savez_compressed(tmp_path / "kmnist" / "kmnist-test-labels.npz", y)
    ds = load_dataset("kmnist", data_dir=tmp_path)
    assert np.bincount(ds.y_test).tolist() == [2] * 10
    assert np.bincount(ds.y_train).tolist() == [8] * 10
    assert ds.classes[:3] == ("o", "ki", "su") and "20%" in ds.source
    # every original image is in exactly one split, with its label
    rows = {x[i].tobytes(): int(y[i]) for i in range(100)}
    seen = [(xi[..., 0].tobytes(), int(yi)) for xi, yi in
            [*zip(ds.x_train, ds.y_train), *zip(ds.x_test, ds.y_test)]]
    assert sorted(seen) == sorted(rows.items())
    np.savez_compressed(tmp_path / "kmnist" / "kmnist-test-labels.npz", other=y)
    clear_memory_cache()
    with pytest.raises(UserError, match="has no array 'arr_0'"):
        load_dataset("kmnist", data_dir=tmp_path)


def test_digits_offline_default():
    ds = load_dataset("digits")
    assert (ds.n_train, ds.n_test, ds.image_shape) == (1198, 599, (8, 8, 1))
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255 and ds.x_train.min() == 0
    counts_all = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    # stratified 1/3 per class (rounded), never more than one off
    assert np.all(np.abs(np.bincount(ds.y_test) - counts_all / 3) <= 0.5)


def test_from_arrays_formats_and_carving():
    x = np.random.default_rng(0).random((40, 5, 5))
    y = np.repeat(np.arange(4), 10)
    ds = from_arrays(x, y)
    assert ds.image_shape == (5, 5, 1) and ds.classes == ("0", "1", "2", "3")
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2, 2]
    np.testing.assert_array_equal(
        np.sort(np.concatenate([ds.x_train, ds.x_test]).ravel()),
        np.sort(np.rint(x * 255).astype(np.uint8).ravel()))
    rgb = from_arrays(np.zeros((4, 2, 2, 3), np.uint8), ["cat", "dog", "cat", "dog"],
                      np.zeros((2, 2, 2, 3), np.uint8), ["dog", "cat"])
    assert rgb.classes == ("cat", "dog") and rgb.y_test.tolist() == [1, 0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(y=[0, 1, -1, 1]), r"y='array containing -1' is invalid: allowed is class indices"),
    (dict(y=[0, 1.5, 1, 0]), r"y='array containing 1.5' is invalid.*integer"),
    (dict(y=[0, 1, 1]), "x has 4 images but y has 3 labels"),
    (dict(y=[0, 2, 0, 2]), r"classes \['1'\] have no training examples"),
    (dict(y=[0, 1, 3, 1], classes=["a", "b"]), r"contains label 3; allowed is 0\.\.1"),
    (dict(x=np.zeros((4, 1, 6, 6), np.uint8)), "channels-first"),
    (dict(x=np.full((4, 2, 2), 2.0)), r"float array in \[2.0, 2.0\]"),
])
def test_from_arrays_rejects_bad_input(kwargs, match):
    args = dict(x=np.zeros((4, 2, 2), np.uint8), y=[0, 1, 0, 1],
                x_test=np.zeros((2, 2, 2), np.uint8), y_test=[0, 1])
    args.update(kwargs)
    if "x" in kwargs:
        args["x_test"] = np.zeros((2, *np.shape(kwargs["x"])[1:]), np.uint8)
    with pytest.raises(UserError, match=match):
        from_arrays(**args)


def test_npz_path_dataset(tmp_path):
    np.savez(tmp_path / "mine.npz", x_train=np.zeros((6, 3, 3), np.uint8),
             y_train=[0, 1, 2, 0, 1, 2], x_test=np.zeros((3, 3, 3), np.uint8),
             y_test=[2, 1, 0], classes=["r", "g", "b"])
    ds = load_dataset(str(tmp_path / "mine.npz"))
    assert ds.name == "mine" and ds.classes == ("r", "g", "b") and ds.y_test.tolist() == [2, 1, 0]


def test_status_and_cli_without_data(tmp_path, capsys):
    rows = {r["name"]: r for r in dataset_status(tmp_path)}
    assert list(rows) == ["digits", "mnist", "kmnist", "cifar10", "synthetic", "banking77", "csv"]
    assert rows["synthetic"]["found"] and rows["synthetic"]["n_test"] == 4000
    assert not rows["banking77"]["found"] and "train.csv" in rows["banking77"]["missing"]
    assert rows["digits"]["found"] and rows["digits"]["n_train"] == 1198
    assert not rows["mnist"]["found"] and "train-images-idx3-ubyte.gz" in rows["mnist"]["missing"]
    assert rows["mnist"]["looked_in"] == [str(tmp_path)]
    write_mnist(tmp_path)
    assert cli_main(["datasets", "--data-dir", str(tmp_path), "--json"]) == 0
    out = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert out["mnist"]["found"] and (out["mnist"]["n_train"], out["mnist"]["n_test"]) == (12, 6)
    assert out["mnist"]["image_shape"] == [4, 3, 1]
    assert cli_main(["datasets", "--data-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"^mnist\s+found\s+12\s+6\s+10\s+4x3x1\s", text, re.M)
    assert re.search(r"^kmnist\s+missing\s", text, re.M) and "'kmnist' not found" in text


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared datasets not present")
def test_status_finds_shared_mnist_via_env(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(SHARED))
    rows = {r["name"]: r for r in dataset_status()}
    assert rows["mnist"]["found"] and rows["mnist"]["path"] == str(SHARED / "mnist")
    assert (rows["mnist"]["n_train"], rows["mnist"]["n_test"]) == (60000, 10000)


@pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="shared datasets not present")
def test_real_mnist_shapes():
    ds = load_dataset("mnist", data_dir=SHARED)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_test).sum() == 10000 and ds.y_train.max() == 9
