"""Image-folder datasets: ``train/<class>/*.jpg|png`` and ``test/<class>/...``, as a directory
or a zip (stored or deflated).

Layouts understood, optionally inside one wrapping top folder:
  * ``train/<class>/...`` and ``test/<class>/...`` (other top folders such as ``val/`` are
    ignored); without ``test/`` a stratified 20% of train (seed 0) becomes the test split;
  * ``<class>/...`` only: everything is train, 20% is carved as test.
Classes are the train class folders sorted by name (for CIFAR-10 that is its usual label order).

Decoding uses a process pool for large sets (JPEG decoding is CPU-bound and holds the GIL in
Python code around each small image); results are cached by ``transferlab.data.cache``.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from transferlab.data.dataset import CARVED_TEST_FRACTION, ImageDataset, stratified_holdout
from transferlab.errors import UserError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
PARALLEL_MIN = 2048  # below this a pool costs more to start than it saves
CHUNK = 1000


@dataclass
class Listing:
    """The image files of a folder/zip, grouped by split; ``*_files`` are (member, label)."""

    root: Path
    is_zip: bool
    classes: tuple[str, ...]
    train_files: list[tuple[str, int]]
    test_files: list[tuple[str, int]] | None


def _relative_images(root: Path) -> tuple[bool, list[str]]:
    if root.is_dir():
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
        is_zip = False
    elif zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir()]
        is_zip = True
    else:
        raise UserError(f"{root} is neither a directory nor a zip file; pass an image folder "
                        "(train/<class>/*.png) or a zip of one")
    keep = [n for n in names if Path(n).suffix.lower() in IMAGE_EXTS
            and not any(part.startswith(".") or part == "__MACOSX" for part in n.split("/"))]
    return is_zip, sorted(keep)


def list_image_folder(path: str | os.PathLike) -> Listing:
    """Find the splits and classes of an image folder or zip without decoding anything."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"image folder {str(root)!r} does not exist; pass an existing directory "
                        "or .zip, or a known dataset name")
    is_zip, names = _relative_images(root)
    if not names:
        raise UserError(f"{root} contains no images ({', '.join(sorted(IMAGE_EXTS))}); expected "
                        "train/<class>/<image> (and optionally test/<class>/<image>)")
    parts = [n.split("/") for n in names]
    # One wrapping folder (e.g. a zip of "cifar10/train/...") is skipped.
    depth = 1 if len({p[0] for p in parts}) == 1 and all(len(p) >= 3 for p in parts) else 0
    split_layout = any(len(p) >= depth + 3 and p[depth] == "train" for p in parts)

    def collect(split: str | None) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for n, p in zip(names, parts):
            if split is None and len(p) >= depth + 2:
                out.setdefault(p[depth], []).append(n)
            elif split is not None and len(p) >= depth + 3 and p[depth] == split:
                out.setdefault(p[depth + 1], []).append(n)
        return out

    train = collect("train" if split_layout else None)
    test = collect("test") if split_layout else {}
    if not train:
        raise UserError(f"{root}: found no images in <class>/ folders; expected "
                        "train/<class>/<image>")
    if not is_zip:  # a class folder without images is a mistake, never a dropped class
        base = root / parts[0][0] if depth else root
        for split, found in (("train", train), ("test", test)) if split_layout else \
                ((None, train),):
            folder = base / split if split else base
            if not folder.is_dir():
                continue
            empty = sorted(d.name for d in folder.iterdir() if d.is_dir()
                           and not d.name.startswith(".") and d.name not in found
                           and d.name not in ("train", "test", "__MACOSX"))
            if empty:
                raise UserError(f"{folder}: class folder(s) {empty} hold no images "
                                f"({', '.join(sorted(IMAGE_EXTS))}); add images or remove "
                                "the folder(s)")
    classes = tuple(sorted(train))
    extra = sorted(set(test) - set(classes))
    if extra:
        raise UserError(f"{root}: test/ has classes {extra} that train/ lacks; every test class "
                        "needs training images: add them to train/ or remove them from test/")
    label = {c: i for i, c in enumerate(classes)}

    def flat(groups: dict[str, list[str]]) -> list[tuple[str, int]]:
        return [(n, label[c]) for c in sorted(groups) for n in groups[c]]

    return Listing(root, is_zip, classes, flat(train), flat(test) if test else None)


_worker_zip: zipfile.ZipFile | None = None
_worker_root: Path | None = None


def _init_worker(root: str, is_zip: bool) -> None:
    # Opening the zip (parsing 60,000 directory entries) once per worker, not per chunk.
    global _worker_zip, _worker_root
    _worker_root = Path(root)
    _worker_zip = zipfile.ZipFile(root) if is_zip else None


def _close_worker() -> None:
    global _worker_zip
    if _worker_zip is not None:
        _worker_zip.close()
    _worker_zip = None


def _too_large(name: str, pixels: int | None) -> UserError:
    """An image past PIL's decompression-bomb bound (``Image.MAX_IMAGE_PIXELS``): decoding
    it at native size could exhaust memory, so it is refused before decoding."""
    size = f"{pixels:,} pixels" if pixels else "too many pixels"
    return UserError(f"{_worker_root}: image {name!r} is invalid: {size}; allowed is at most "
                     f"{Image.MAX_IMAGE_PIXELS:,} pixels (PIL's decompression-bomb bound); "
                     "resize it or remove it from the dataset")


def _decode_one(name: str) -> np.ndarray:
    try:
        if _worker_zip is not None:
            fh = io.BytesIO(_worker_zip.read(name))
        else:
            fh = open(_worker_root / name, "rb")  # noqa: SIM115 - closed below
        with fh, Image.open(fh) as im:
            if im.width * im.height > Image.MAX_IMAGE_PIXELS:  # before decoding a pixel
                raise _too_large(name, im.width * im.height)
            if im.mode not in ("L", "RGB"):
                im = im.convert("L" if im.mode in ("1", "LA", "I", "I;16", "F") else "RGB")
            return np.asarray(im, dtype=np.uint8)
    except Image.DecompressionBombError as exc:  # PIL refused it at open (2x its bound)
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(name, int(found.group(1)) if found else None) from None
    except (UnidentifiedImageError, OSError, zipfile.BadZipFile) as exc:
        raise UserError(f"{_worker_root}: cannot decode {name!r} ({exc}); the file is corrupt: "
                        "delete or re-create it (or re-download the archive)") from None


def _decode_chunk(names: list[str]) -> list[np.ndarray]:
    return [_decode_one(n) for n in names]


def decode_images(root: str | os.PathLike, is_zip: bool, names: list[str], progress: bool = True,
                  workers: int | None = None, desc: str = "decode") -> list[np.ndarray]:
    """Decode image files to arrays ((H, W) for grey, (H, W, 3) for colour), in order."""
    workers = workers or min(os.cpu_count() or 1, 8)
    bar = tqdm(total=len(names), desc=desc, unit="img", disable=not progress)
    chunks = [names[i:i + CHUNK] for i in range(0, len(names), CHUNK)]
    out: list[np.ndarray] = []
    try:
        if workers > 1 and len(names) >= PARALLEL_MIN:
            # fork where available: no re-import of the caller's script, fast start.
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(str(root), is_zip)) as pool:
                for arrays in pool.map(_decode_chunk, chunks):
                    out += arrays
                    bar.update(len(arrays))
        else:
            _init_worker(str(root), is_zip)
            try:
                for chunk in chunks:
                    out += _decode_chunk(chunk)
                    bar.update(len(chunk))
            finally:
                _close_worker()
    finally:
        bar.close()
    return out


def stack_images(arrays: list[np.ndarray]) -> tuple[np.ndarray, str]:
    """(N, H, W, C) uint8 from decoded images, plus a note on any conversion made.

    Mixed grey and colour -> all RGB. Mixed sizes -> resized (bilinear) to the most common size.
    """
    colour = any(a.ndim == 3 for a in arrays)
    sizes = Counter(a.shape[:2] for a in arrays)
    (h, w), _ = sizes.most_common(1)[0]
    note = ""
    odd = sum(n for s, n in sizes.items() if s != (h, w))
    if odd:
        note = f"; {odd} images resized to {h}x{w}"
    out = np.empty((len(arrays), h, w, 3 if colour else 1), dtype=np.uint8)
    for i, a in enumerate(arrays):
        if a.shape[:2] != (h, w):
            a = np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))
        out[i] = a[..., None] if a.ndim == 2 else a
    return out, note


def decode_image_folder(path: str | os.PathLike, progress: bool = True,
                        workers: int | None = None) -> ImageDataset:
    """Decode a whole image folder or zip (no caching; see ``sources.load_dataset``)."""
    listing = list_image_folder(path)
    files = listing.train_files + (listing.test_files or [])
    arrays = decode_images(listing.root, listing.is_zip, [n for n, _ in files], progress,
                           workers, desc=f"decode {listing.root.name}")
    x, note = stack_images(arrays)
    y = np.array([label for _, label in files], dtype=np.int64)
    n_train = len(listing.train_files)
    source = f"image folder {listing.root.name}{note}"
    if listing.test_files is None:
        keep, held = stratified_holdout(y, CARVED_TEST_FRACTION, seed=0)
        x_train, y_train, x_test, y_test = x[keep], y[keep], x[held], y[held]
        source += f" (no test/: test = stratified {CARVED_TEST_FRACTION:.0%} of train, seed 0)"
    else:
        x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    name = listing.root.stem if listing.is_zip else listing.root.name
    return ImageDataset(name, x_train, y_train, x_test, y_test, listing.classes, source)
