"""Known datasets by name, ``load_dataset`` and ``dataset_status``.

| name | files (looked up as DIR/name/F, then DIR/F) | splits |
| --- | --- | --- |
| digits | none: scikit-learn's bundled ``load_digits`` | 1,198 / 599 (stratified 1/3 test, seed 0) |
| mnist | the four IDX files, ``.gz`` or plain | official 60,000 / 10,000 |
| kmnist | ``kmnist-test-{imgs,labels}.npz`` (test release) | 8,000 / 2,000 carved (20%, seed 0) |
| cifar10 | ``cifar10-jpeg.zip`` (image folder) | official 50,000 / 10,000 |

Anything else is a path: an image folder directory or ``.zip``, or an ``.npz`` with arrays
``x_train, y_train[, x_test, y_test][, classes]`` (images, or (N, D) feature vectors).
Relative paths are tried in the current directory, then in each data directory. More
sources are added with ``register_source`` (data/registry.py), each with its own task keys.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transferlab.data import cache, imagefolder
from transferlab.data.arrays import from_arrays
from transferlab.data.dataset import CARVED_TEST_FRACTION, ImageDataset, stratified_holdout
from transferlab.data.idx import MAGIC_IMAGES, load_mnist_pair, read_idx_header
from transferlab.data.paths import DataDir, data_dirs, find_fileset, missing_message
from transferlab.data.registry import SOURCES, ImageKeys, SourceKeys, register_source
from transferlab.errors import UserError

DIGITS_TEST_FRACTION = 1 / 3
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")  # お き す つ な は ま や れ を
_MNIST_GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _load_digits(paths: list[Path], progress: bool) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[..., None]  # 0..16 -> 0..255
    y = bunch.target.astype(np.int64)
    keep, held = stratified_holdout(y, DIGITS_TEST_FRACTION, seed=0)
    return ImageDataset("digits", x[keep], y[keep], x[held], y[held],
                        tuple(str(i) for i in range(10)),
                        "scikit-learn load_digits (8x8, 0..16 scaled to 0..255); test = "
                        "stratified 1/3, seed 0")


def _load_mnist(paths: list[Path], progress: bool) -> ImageDataset:
    def decode() -> ImageDataset:
        x_tr, y_tr = load_mnist_pair(paths[0], paths[1])
        x_te, y_te = load_mnist_pair(paths[2], paths[3])
        return ImageDataset("mnist", x_tr, y_tr, x_te, y_te, tuple(str(i) for i in range(10)),
                            "MNIST IDX files " + ", ".join(p.name for p in paths))
    return cache.cached_dataset("mnist", paths, decode)


def _describe_mnist(paths: list[Path]) -> dict:
    magic, dims = read_idx_header(paths[0])
    _, test_dims = read_idx_header(paths[2])
    if magic != MAGIC_IMAGES or len(dims) != 3 or len(test_dims) != 3:
        raise UserError(f"{paths[0]}: not an IDX image file (magic {magic}); re-download it")
    return {"n_train": dims[0], "n_test": test_dims[0], "num_classes": 10,
            "image_shape": [dims[1], dims[2], 1], "cached": cache.is_cached("mnist", paths)}


def _npz_array(path: Path, key: str | None = None) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as f:
            names = list(f.keys())
            return f[key or names[0]]
    except KeyError:
        raise UserError(f"{path} has no array {key!r} (it has {names}); re-download it") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is truncated or corrupt ({exc}); delete it and re-download "
                        "it") from None


def _load_kmnist(paths: list[Path], progress: bool) -> ImageDataset:
    x = _npz_array(paths[0], "arr_0")
    y = _npz_array(paths[1], "arr_0")
    if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y):
        raise UserError(f"{paths[0]} / {paths[1]}: expected (N, 28, 28) uint8 images and (N,) "
                        f"labels, got {x.shape} {x.dtype} and {y.shape}; re-download them")
    y = y.astype(np.int64)
    keep, held = stratified_holdout(y, CARVED_TEST_FRACTION, seed=0)
    return ImageDataset("kmnist", x[keep][..., None], y[keep], x[held][..., None], y[held],
                        KMNIST_CLASSES,
                        f"KMNIST test release {paths[0].name} only; train/test = stratified "
                        f"{1 - CARVED_TEST_FRACTION:.0%}/{CARVED_TEST_FRACTION:.0%} of it, seed 0")


def _load_folder(path: Path, progress: bool) -> ImageDataset:
    return cache.cached_dataset(
        "imagefolder", [path], lambda: imagefolder.decode_image_folder(path, progress))


def _load_cifar10(paths: list[Path], progress: bool) -> ImageDataset:
    ds = _load_folder(paths[0], progress)
    return dataclasses.replace(ds, name="cifar10", source=f"CIFAR-10 JPEG re-encoding, {ds.source}")


def _describe_folder(paths: list[Path]) -> dict:
    listing = imagefolder.list_image_folder(paths[0])
    if cache.is_cached("imagefolder", paths):
        ds = _load_folder(paths[0], progress=False)
        return {"n_train": ds.n_train, "n_test": ds.n_test, "num_classes": ds.num_classes,
                "image_shape": list(ds.image_shape), "cached": True}
    first = imagefolder.decode_images(listing.root, listing.is_zip, [listing.train_files[0][0]],
                                      progress=False)[0]
    n = len(listing.train_files) + len(listing.test_files or [])
    n_test = (len(listing.test_files) if listing.test_files is not None
              else None)  # carved at decode time
    return {"n_train": n - n_test if n_test is not None else None, "n_test": n_test,
            "num_classes": len(listing.classes),
            "image_shape": [*first.shape[:2], 3 if first.ndim == 3 else 1], "cached": False}


def _builtin(load: Callable[[list[Path], bool], ImageDataset]):
    """A loader of the built-in image sources (their keys act after loading)."""
    return lambda keys, paths, progress: load(paths, progress)


register_source("digits", _builtin(_load_digits), keys=ImageKeys,
                description="scikit-learn's bundled 8x8 digits (offline default; use size=16)")
register_source("mnist", _builtin(_load_mnist), keys=ImageKeys,
                description="MNIST handwritten digits, 28x28 grey",
                filesets=(_MNIST_GZ, tuple(f.removesuffix(".gz") for f in _MNIST_GZ)),
                describe=_describe_mnist)
register_source("kmnist", _builtin(_load_kmnist), keys=ImageKeys,
                description="Kuzushiji-MNIST cursive Japanese, 28x28 grey (test release only)",
                filesets=(("kmnist-test-imgs.npz", "kmnist-test-labels.npz"),))
register_source("cifar10", _builtin(_load_cifar10), keys=ImageKeys,
                description="CIFAR-10 32x32 colour (JPEG zip image folder)",
                filesets=(("cifar10-jpeg.zip",),), describe=_describe_folder)

_LRU: OrderedDict[tuple, ImageDataset] = OrderedDict()
LRU_SIZE = 4  # decoded datasets kept in this process (cached ones are memory maps anyway)


def clear_memory_cache() -> None:
    """Forget the datasets and built tasks kept in this process, on the host and on devices
    (the on-disk decode cache stays)."""
    from transferlab.data.resident import clear_device_memo
    from transferlab.data.tasks import clear_task_memo

    _LRU.clear()
    clear_task_memo()
    clear_device_memo()


def _stamp(paths: list[Path]) -> tuple:
    out = []
    for p in paths:
        st = p.stat()
        out.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _remember(key: tuple, load: Callable[[], ImageDataset]) -> ImageDataset:
    if key in _LRU:
        _LRU.move_to_end(key)
        return _LRU[key]
    ds = load()
    _LRU[key] = ds
    while len(_LRU) > LRU_SIZE:
        _LRU.popitem(last=False)
    return ds


def locate(name: str, data_dir: DataDir = None) -> list[Path]:
    """The files of a known dataset; ``UserError`` saying what was looked for where."""
    src = SOURCES[name]
    if not src.filesets:
        return []
    dirs = data_dirs(data_dir)
    paths = find_fileset(name, src.filesets, dirs)
    if paths is None:
        raise UserError(missing_message(name, src.filesets, dirs))
    return paths


def _resolve_path(name_or_path: str, data_dir: DataDir) -> Path:
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    if not p.is_absolute():
        for d in data_dirs(data_dir):
            if (d / p).exists():
                return d / p
    raise UserError(f"dataset {name_or_path!r} is not a known name ({', '.join(SOURCES)}) nor "
                    "an existing path; pass one of those names, or an image folder / .zip / "
                    ".npz path (relative paths are also looked up in --data-dir / "
                    "TRANSFERLAB_DATA)")


def _load_npz(path: Path) -> ImageDataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.keys())
            if not {"x_train", "y_train"} <= keys:
                raise UserError(f"{path} has arrays {sorted(keys)}; a dataset .npz needs "
                                "x_train and y_train (and optionally x_test, y_test, classes)")
            get = {k: f[k] for k in keys}
    except UserError:
        raise
    except ValueError as exc:  # object arrays: loading them would unpickle, never done here
        raise UserError(f"{path} holds an object (pickled) array, which is never loaded "
                        f"({exc}); save numeric arrays, e.g. np.savez(path, x_train=x.astype("
                        "np.uint8), y_train=y)") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"{path} is truncated or corrupt ({exc}); write it again") from None
    classes = [str(c) for c in get["classes"]] if "classes" in get else None
    return from_arrays(get["x_train"], get["y_train"], get.get("x_test"), get.get("y_test"),
                       classes=classes, name=path.stem)


def load_dataset(name_or_path: str, data_dir: DataDir = None, progress: bool = True,
                 keys: SourceKeys | None = None) -> ImageDataset:
    """Load a dataset by registered name ("digits", "mnist", "kmnist", "cifar10", ...) or path.

    Args:
        name_or_path: a registered name, or an image folder (directory or .zip) or .npz.
        data_dir: where to look for named datasets; default ``$TRANSFERLAB_DATA``.
        progress: show a progress bar while decoding images.
        keys: the source's task keys (``TaskSpec.source_keys``) when they shape the data
            (e.g. a synthetic source's dimension); default the source's defaults.

    Returns a ``Dataset`` (``ImageDataset``): images x (N, H, W, C) uint8, vectors (N, D)
    float32 or tokens, and y (N,) int64. Decoded images are cached on disk
    (``$TRANSFERLAB_CACHE``) and the last few datasets are kept in memory.
    """
    name_or_path = str(name_or_path)
    if name_or_path in SOURCES:
        src = SOURCES[name_or_path]
        keys = src.keys() if keys is None else keys
        if type(keys) is not src.keys:
            raise UserError(f"keys={keys!r} are not {src.keys.__name__}, the keys of source "
                            f"{src.name!r}; parse the task with TaskSpec.parse")
        paths = locate(name_or_path, data_dir)
        return _remember((src.name, keys.load_key(), _stamp(paths)),
                         lambda: src.load(keys, paths, progress))
    path = _resolve_path(name_or_path, data_dir)
    if path.suffix.lower() == ".npz" and path.is_file():
        loader = lambda: _load_npz(path)  # noqa: E731
    else:
        loader = lambda: _load_folder(path, progress)  # noqa: E731
    stamp = _stamp([path]) if path.is_file() else (str(path.resolve()), cache.source_key([path]))
    return _remember(("path", stamp), loader)


def dataset_status(data_dir: DataDir = None) -> list[dict]:
    """One dict per known dataset: found or not, where, and sizes where found.

    Keys: name, description, modality, found, path, files, looked_in, missing (message or
    None), n_train, n_test, num_classes, image_shape (H, W, C; the per-example shape for
    other modalities), cached (decode cache filled), error.
    Sizes come from headers and listings where possible; nothing large is decoded.
    """
    dirs = data_dirs(data_dir)
    out = []
    for src in SOURCES.values():
        row: dict = {"name": src.name, "description": src.description, "found": False,
                     "path": None, "files": [], "looked_in": [], "missing": None,
                     "n_train": None, "n_test": None, "num_classes": None, "image_shape": None,
                     "cached": None, "error": None, "modality": src.modality}
        row["looked_in"] = [str(d) for d in dirs]
        try:
            paths = locate(src.name, dirs)
        except UserError as exc:
            row["missing"] = str(exc)
            out.append(row)
            continue
        row.update(found=True, files=[str(p) for p in paths],
                   path=str(paths[0].parent) if paths else (
                       "scikit-learn (bundled)" if src.name == "digits" else
                       "(given in the task)" if src.name == "csv" else "generated (no files)"))
        try:
            if src.describe is None:
                ds = load_dataset(src.name, dirs, progress=False)
                # non-image sources show their per-example shape in the same column
                row.update(n_train=ds.n_train, n_test=ds.n_test, num_classes=ds.num_classes,
                           image_shape=list(ds.input_shape), modality=ds.modality)
            else:
                row.update(src.describe(paths))
        except UserError as exc:
            row["error"] = str(exc)
        out.append(row)
    return out


def dataset_names() -> list[str]:
    return list(SOURCES)

