"""The IDX format of MNIST-style files (optionally gzip-compressed).

Header: two zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST uses), the
number of dimensions, then each dimension as a big-endian uint32; then the data. So the
magic number of an image file (3 dims) is 2051 and of a label file (1 dim) is 2049.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from transferlab.errors import UserError

MAGIC_IMAGES = 2051
MAGIC_LABELS = 2049


def _read_bytes(path: Path) -> bytes:
    """The uncompressed content; a truncated or corrupt gzip becomes a ``UserError``."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise UserError(f"{path} is truncated or corrupt ({exc}); delete it and re-download "
                        "it") from None


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) as a uint8 array of the dimensions in its header.

    Raises ``UserError`` naming the file if the magic number, type or length is wrong.
    """
    path = Path(path)
    data = _read_bytes(path)
    fix = "delete it and re-download it"
    if len(data) < 4:
        raise UserError(f"{path} is too short to be an IDX file ({len(data)} bytes); {fix}")
    magic = struct.unpack(">I", data[:4])[0]
    zeros, dtype_code, ndim = data[0:2], data[2], data[3]
    if expect_magic is not None and magic != expect_magic:
        raise UserError(f"{path}: IDX magic number is {magic}, expected {expect_magic} "
                        f"({'images' if expect_magic == MAGIC_IMAGES else 'labels'}); is it the "
                        f"right file? Otherwise {fix}")
    if zeros != b"\0\0" or dtype_code != 0x08 or ndim == 0:
        raise UserError(f"{path}: IDX magic number {magic} is not an unsigned-byte IDX file "
                        f"(2049 labels / 2051 images); {fix}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path}: IDX header is cut short; {fix}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != expected:
        raise UserError(f"{path}: header says {dims} = {expected} bytes of data but the file "
                        f"holds {len(data) - header}; it is truncated or corrupt; {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_header(path: str | os.PathLike) -> tuple[int, tuple[int, ...]]:
    """(magic, dims) from the first bytes only, for cheap status reports."""
    path = Path(path)
    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            ndim = head[3] if len(head) == 4 else 0
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
    except (EOFError, OSError, zlib.error, struct.error) as exc:
        raise UserError(f"{path} is truncated or corrupt ({exc}); delete it and re-download "
                        "it") from None
    return struct.unpack(">I", head)[0], dims


def load_mnist_pair(images: str | os.PathLike, labels: str | os.PathLike
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One split: images (N, H, W, 1) uint8 and labels (N,) int64, with lengths checked."""
    x = read_idx(images, MAGIC_IMAGES)
    y = read_idx(labels, MAGIC_LABELS)
    if x.ndim != 3:
        raise UserError(f"{images}: expected 3 dimensions (N, H, W), header says {x.shape}")
    if y.ndim != 1:
        raise UserError(f"{labels}: expected 1 dimension (N,), header says {y.shape}")
    if len(x) != len(y):
        raise UserError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels; "
                        "they must be a matching pair: re-download them")
    return x[..., None], y.astype(np.int64)
