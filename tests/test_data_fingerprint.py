"""Keys that cannot lie: same task string, other data -> other fingerprint, no stale features."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.data import clear_memory_cache, from_arrays, from_tokens, make_task
from transferlab.features import FeatureCache, compute_split_features
from transferlab.models import build_model


@pytest.fixture(autouse=True)
def isolated(isolated_data):
    """Every test here runs on its own data layer (see conftest.isolated_data)."""


def mlp_for(task):
    torch.manual_seed(0)
    return build_model("mlp", task.num_classes, **task.model_kwargs, width=8, depth=3).eval()


def assert_fresh(feats, model, task, depth):
    fresh = compute_split_features(model, task, depth)
    assert all(torch.equal(feats[s], fresh[s]) for s in fresh)


def test_from_arrays_named_alike_with_other_data_get_no_stale_hit(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    a = make_task("feats:per_class=8", dataset=from_arrays(rng.normal(size=(60, 5)), y,
                                                          name="feats"))
    b = make_task("feats:per_class=8", dataset=from_arrays(rng.normal(size=(60, 5)), y,
                                                          name="feats"))
    assert str(a.spec) == str(b.spec) and a.fingerprint != b.fingerprint
    x0 = rng.normal(size=(60, 5))
    same = make_task("p:per_class=8", dataset=from_arrays(x0, y, name="p"))
    again = make_task("q:per_class=8", dataset=from_arrays(x0.astype(np.float32), y, name="q"))
    assert same.fingerprint == again.fingerprint  # the data, not the name, is the key
    model = mlp_for(a)
    fc = FeatureCache(tmp_path / "features")
    fc.get_or_compute(model, a, 2)
    got = fc.get_or_compute(model, b, 2)
    assert fc.last_start == 0  # computed for b, not read from a's entry
    assert_fresh(got, model, b, 2)
    assert fc.key(model, a, 2) != fc.key(model, b, 2)
    assert fc.key(model, a, 2) == fc.key(model, a.fingerprint, 2)
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 2


def test_a_hit_with_other_split_sizes_is_refused_and_recomputed(tmp_path):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(2), 30)
    ds = from_arrays(rng.normal(size=(60, 4)), y, name="v")
    small, big = make_task("v:per_class=4", dataset=ds), make_task("v:per_class=9", dataset=ds)
    model = mlp_for(small)
    root = tmp_path / "features"
    fc = FeatureCache(root)
    fc.get_or_compute(model, small, 2)
    (entry,) = root.glob("*.safetensors")
    # plant small's features under big's key, as a key collision or a buggy writer would
    entry.rename(root / f"{fc.key(model, big, 2)}.safetensors")
    got = fc.get_or_compute(model, big, 2)
    assert fc.last_start == 0 and len(got["train"]) == big.n_train
    assert_fresh(got, model, big, 2)


def png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_edited_image_folder_changes_fingerprint_decode_and_features(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "shapes"
    for split, n in (("train", 6), ("test", 2)):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                (root / split / c / f"{i}.png").write_bytes(
                    png(rng.integers(0, 256, (4, 4), dtype=np.uint8)))
    text = f"{root}:val_fraction=0.0"
    before = make_task(text)
    model = build_model("mlp", 2, **before.model_kwargs, width=8, depth=2).eval()
    fc = FeatureCache(tmp_path / "features")
    fc.get_or_compute(model, before, 1)
    edited = root / "train" / "b" / "3.png"
    st = edited.stat()
    edited.write_bytes(png(np.full((4, 4), 7, np.uint8)))  # other pixels
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later edit, as usual
    after = make_task(text)
    # the decode cache noticed (the dataset holds the new pixels), and so does the key
    assert not torch.equal(after.x_train, before.x_train)
    assert (after.x_train == (7 / 255 - 0.5) / 0.5).flatten(1).all(1).sum() == 1
    assert after.fingerprint != before.fingerprint
    got = fc.get_or_compute(model, after, 1)
    assert fc.last_start == 0
    assert_fresh(got, model, after, 1)
    clear_memory_cache()
    assert make_task(text).fingerprint == after.fingerprint  # stable across reloads


def test_fingerprint_covers_every_modality_and_survives_to():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(2), 10)
    ids = rng.integers(0, 20, (20, 5))
    t1 = make_task("t", dataset=from_tokens(ids, None, y, name="t"))
    ids[0, 0] += 1
    t2 = make_task("t", dataset=from_tokens(ids, None, y, name="t"))
    assert t1.fingerprint != t2.fingerprint
    mask = np.ones_like(ids)
    mask[0, -1] = 0
    t3 = make_task("t", dataset=from_tokens(ids, mask, y, name="t"))
    assert t3.fingerprint != t2.fingerprint  # the mask is data too
    moved = t1.to("cpu")
    assert "_fingerprint" in moved.__dict__ and moved.fingerprint == t1.fingerprint
