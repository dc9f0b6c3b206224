"""In-memory batching and on-device augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.data import Augment, batches
from transferlab.errors import UserError


def data(n=23):
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 2, 2).clone()
    return x, torch.arange(n)


def test_every_sample_once_per_epoch():
    x, y = data()
    got = list(batches(x, y, 5, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b[1]) for b in got] == [5, 5, 5, 5, 3]
    ys = torch.cat([b[1] for b in got])
    assert sorted(ys.tolist()) == list(range(23)) and ys.tolist() != list(range(23))
    for xb, yb in got:  # x and y stay paired
        assert torch.equal(xb[:, 0, 0, 0].long(), yb)
    ordered = torch.cat([b[1] for b in batches(x, y, 5, shuffle=False)])
    assert ordered.tolist() == list(range(23))
    dropped = list(batches(x, y, 5, shuffle=True, drop_last=True))
    assert [len(b[1]) for b in dropped] == [5, 5, 5, 5]


def test_seed_reproduces_order():
    x, y = data()

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([yb for _, yb in batches(x, y, 4, True, generator=g)]).tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_bad_batch_size():
    x, y = data()
    with pytest.raises(UserError, match="batch_size=0 is invalid: allowed is an integer >= 1"):
        next(batches(x, y, 0, shuffle=False))


def test_hflip_is_exact_mirror():
    x = torch.randn(64, 3, 5, 7)
    out = Augment(hflip=True)(x, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all()  # every sample is itself or its exact mirror
    assert 10 < int(mirrored.sum()) < 54  # about half flipped


def shifted(img: np.ndarray, dy: int, dx: int, p: int, mode: str) -> np.ndarray:
    """Crop (H, W) at offset (dy, dx) of the image padded by p (manual reference)."""
    c, h, w = img.shape
    padded = np.pad(img, ((0, 0), (p, p), (p, p)), mode="reflect" if mode == "reflect"
                    else "constant")
    return padded[:, dy:dy + h, dx:dx + w]


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_crop_gives_shifted_copies(mode):
    p = 2
    x = torch.randn(40, 2, 6, 5)
    out = Augment(crop_padding=p, padding_mode=mode)(x, torch.Generator().manual_seed(3))
    offsets = []
    for img, o in zip(x.numpy(), out.numpy()):
        hits = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                if np.array_equal(o, shifted(img, dy, dx, p, mode))]
        assert hits, "output is not a shifted copy"
        offsets.append(hits[0])
    assert len(set(offsets)) > 5  # offsets vary per sample


def test_augment_reproducible_in_batches_and_validated():
    x, y = torch.randn(10, 1, 4, 4), torch.arange(10)
    aug = Augment(crop_padding=1, hflip=True)

    def run():
        g = torch.Generator().manual_seed(7)
        return torch.cat([xb for xb, _ in batches(x, y, 3, True, generator=g, augment=aug)])

    assert torch.equal(run(), run())
    assert run().shape == x.shape
    with pytest.raises(UserError, match="crop_padding=-1 is invalid"):
        Augment(crop_padding=-1)
    with pytest.raises(UserError, match="less than the image size 4 for reflect"):
        Augment(crop_padding=4)(x)


def test_crop_and_flip_combine_as_mirrored_shift():
    p = 1
    x = torch.randn(30, 1, 4, 6)
    out = Augment(crop_padding=p, hflip=True, padding_mode="zeros")(
        x, torch.Generator().manual_seed(0))
    n_mirrored = 0
    for img, o in zip(x.numpy(), out.numpy()):
        crops = [shifted(img, dy, dx, p, "zeros") for dy in range(3) for dx in range(3)]
        plain = any(np.array_equal(o, c) for c in crops)
        mirror = any(np.array_equal(o, c[..., ::-1]) for c in crops)
        assert plain or mirror
        n_mirrored += mirror and not plain
    assert n_mirrored > 0
