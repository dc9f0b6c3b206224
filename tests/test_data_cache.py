"""Image folders (directory and zip) and the on-disk decode cache."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab.data import cache, clear_memory_cache, imagefolder, load_dataset
from transferlab.errors import UserError


@pytest.fixture(autouse=True)
def isolated(isolated_data):
    """Every test here runs on its own data layer (see conftest.isolated_data)."""


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_tree(seed=0, classes=("dog", "cat", "ant"), n_train=4, n_test=2, test=True, hw=(5, 6)):
    """{relative path: RGB uint8 array} for a train/test image folder."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)) if test else (("train", n_train),):
        for c in classes:
            for i in range(n):
                files[f"{split}/{c}/{i:03d}.png"] = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    return files


def write_zip(path: Path, files: dict, prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for name, a in files.items():
            z.writestr(prefix + name, png(a) if isinstance(a, np.ndarray) else a)
    return path


def expected(files: dict, split: str, classes: tuple[str, ...]):
    names = sorted(n for n in files if n.startswith(split + "/"))
    names.sort(key=lambda n: classes.index(n.split("/")[1]))
    return (np.stack([files[n] for n in names]),
            np.array([classes.index(n.split("/")[1]) for n in names]))


def test_zip_image_folder_known_pixels_and_sorted_classes(tmp_path):
    files = make_tree()
    ds = load_dataset(str(write_zip(tmp_path / "pets.zip", files, prefix="pets/")))
    assert ds.name == "pets" and ds.classes == ("ant", "cat", "dog")
    for split in ("train", "test"):
        x, y = expected(files, split, ds.classes)
        np.testing.assert_array_equal(getattr(ds, f"x_{split}"), x)
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), y)


def test_directory_equals_zip(tmp_path):
    files = make_tree()
    for name, a in files.items():
        (tmp_path / "tree" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "tree" / name).write_bytes(png(a))
    from_dir = load_dataset(str(tmp_path / "tree"))
    from_zip = load_dataset(str(write_zip(tmp_path / "tree.zip", files)))
    for a in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_dir, a), getattr(from_zip, a))


def test_second_load_hits_cache_and_content_change_invalidates(tmp_path, monkeypatch):
    path = write_zip(tmp_path / "data.zip", make_tree())
    first = load_dataset(str(path))
    clear_memory_cache()
    cache._memo.clear()

    def boom(*args, **kwargs):
        raise AssertionError("decoded although cached")

    real = imagefolder.decode_images
    monkeypatch.setattr(imagefolder, "decode_images", boom)
    second = load_dataset(str(path))
    assert second is not first
    for a in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(second, a), getattr(first, a))
    assert second.classes == first.classes
    write_zip(path, make_tree(seed=1))  # same names and sizes, new pixels
    clear_memory_cache()
    calls = []
    monkeypatch.setattr(imagefolder, "decode_images",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    third = load_dataset(str(path))
    assert calls == [1]
    assert not np.array_equal(third.x_train, first.x_train)


def test_sha256_is_remembered_by_path_size_mtime(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"a" * 3_000_000)
    assert cache.file_sha256(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    st = path.stat()
    path.write_bytes(b"b" * 3_000_000)  # same size; restore the mtime
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    cache._memo.clear()  # only the on-disk index can answer now
    assert cache.file_sha256(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.file_sha256(path) == hashlib.sha256(b"b" * 3_000_000).hexdigest()


def test_no_test_folder_carves_stratified_test(tmp_path):
    files = make_tree(n_train=10, test=False)
    ds = load_dataset(str(write_zip(tmp_path / "only.zip", files)))
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2] and np.bincount(ds.y_train).tolist() == [8] * 3
    assert "no test/" in ds.source


def test_class_folders_without_train_dir(tmp_path):
    files = {n.removeprefix("train/"): a for n, a in make_tree(n_train=5, test=False).items()}
    ds = load_dataset(str(write_zip(tmp_path / "flat.zip", files)))
    assert ds.classes == ("ant", "cat", "dog") and ds.n_train + ds.n_test == 15


def test_jpeg_grey_and_mixed_sizes(tmp_path):
    smooth = np.empty((16, 16, 3), np.uint8)
    smooth[:] = (200, 50, 100)  # flat colour: JPEG's chroma subsampling cannot blur it
    buf = io.BytesIO()
    Image.fromarray(smooth).save(buf, format="JPEG", quality=95)
    grey = np.full((8, 8), 77, np.uint8)
    files = {"train/a/0.jpg": buf.getvalue(), "train/b/0.png": png(grey),
             "train/b/1.png": png(np.zeros((16, 16), np.uint8)), "test/a/0.jpg": buf.getvalue()}
    ds = load_dataset(str(write_zip(tmp_path / "mixed.zip", files)))
    assert ds.image_shape == (16, 16, 3) and "1 images resized to 16x16" in ds.source
    assert np.abs(ds.x_train[0].astype(int) - smooth).max() <= 3  # JPEG is lossy
    assert (ds.x_train[2] == 0).all() and np.all(ds.x_train[1] == 77)  # grey -> equal RGB


def test_corrupt_image_and_bad_layouts(tmp_path):
    files = {**make_tree(), "train/ant/bad.png": b"not an image"}
    with pytest.raises(UserError, match=r"cannot decode 'train/ant/bad.png'.*corrupt"):
        load_dataset(str(write_zip(tmp_path / "bad.zip", files)))
    files = {**make_tree(), "test/zebra/0.png": png(np.zeros((5, 6, 3), np.uint8))}
    with pytest.raises(UserError, match=r"test/ has classes \['zebra'\] that train/ lacks"):
        load_dataset(str(write_zip(tmp_path / "extra.zip", files)))
    with pytest.raises(UserError, match="contains no images"):
        load_dataset(str(write_zip(tmp_path / "empty.zip", {"readme.txt": b"hi"})))


def test_process_pool_decode_matches_in_process(tmp_path, monkeypatch):
    files = make_tree(n_train=3)
    path = write_zip(tmp_path / "p.zip", files)
    names = sorted(files)
    serial = imagefolder.decode_images(path, True, names, progress=False, workers=1)
    monkeypatch.setattr(imagefolder, "PARALLEL_MIN", 1)
    monkeypatch.setattr(imagefolder, "CHUNK", 4)
    pooled = imagefolder.decode_images(path, True, names, progress=False, workers=2)
    assert len(pooled) == len(names)
    for a, b, n in zip(serial, pooled, names):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(b, files[n])
