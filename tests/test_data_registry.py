"""Registered dataset sources: each parses and validates its own task keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from transferlab.data import (ImageKeys, SourceKeys, TaskSpec, clear_memory_cache, from_arrays,
                              get_source, load_dataset, make_task, register_source,
                              unregister_source)
from transferlab.errors import UserError, bad_value

LOADS: list[tuple] = []


@dataclass(frozen=True)
class ToyKeys(SourceKeys):
    """A vector source's own keys: the feature dimension and a scale."""

    dim: int = field(default=3, metadata={"help": "feature dimension D"})
    scale: float = field(default=1.0, metadata={"help": "multiplies every feature"})
    centred: bool = field(default=False, metadata={"help": "subtract each feature's mean"})

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise bad_value("dim", self.dim, "an integer >= 1")
        if not self.scale > 0:
            raise bad_value("scale", self.scale, "a number > 0")


def load_toy(keys: ToyKeys, paths, progress):
    LOADS.append((keys.dim, keys.scale))
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    x = rng.normal(size=(40, keys.dim)) * keys.scale
    if keys.centred:
        x = x - x.mean(0)
    return from_arrays(x, y, name="toy")


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    clear_memory_cache()
    LOADS.clear()
    register_source("toy", load_toy, keys=ToyKeys, description="test vectors",
                    modality="vector")
    yield
    unregister_source("toy")
    clear_memory_cache()


def test_source_keys_parse_validate_and_round_trip(toy):
    spec = TaskSpec.parse("toy:classes=0-2:per_class=4:dim=5:scale=2.5:centred=true:episode=1")
    assert spec.source_keys == ToyKeys(dim=5, scale=2.5, centred=True)
    assert spec.dim == 5 and spec.scale == 2.5 and spec.episode == 1
    assert str(spec) == "toy:classes=0-2:per_class=4:dim=5:scale=2.5:centred=True:episode=1"
    assert TaskSpec.parse(str(spec)) == spec
    assert str(TaskSpec.parse("toy:dim=3")) == "toy"  # defaults are omitted
    assert TaskSpec("toy", dim=5, per_class=4) == TaskSpec.parse("toy:per_class=4:dim=5")
    assert TaskSpec.keys("toy") == ["classes", "half", "split", "split_seed", "per_class",
                                    "fraction", "val_fraction", "val_per_class", "dim",
                                    "scale", "centred", "seed", "episode"]
    assert {"dim", "size", "episode"} <= set(TaskSpec.keys())  # what sweeps may use as axes
    assert dataclasses.replace(spec, per_class=6).dim == 5


def test_source_keys_shape_the_loaded_data(toy):
    task = make_task("toy:dim=7:per_class=4")
    assert task.modality == "vector" and task.input_shape == (7,)
    assert make_task("toy:dim=7:per_class=4:seed=1").input_shape == (7,)
    assert LOADS == [(7, 1.0)]  # the second task reused the loaded dataset
    assert make_task("toy:dim=2").input_shape == (2,) and LOADS[-1] == (2, 1.0)
    scaled = make_task("toy:scale=3.0")
    plain = make_task("toy")
    assert torch.allclose(scaled.x_test, 3 * plain.x_test)
    assert load_dataset("toy", keys=ToyKeys(dim=4)).input_shape == (4,)
    with pytest.raises(UserError, match="are not ToyKeys, the keys of source 'toy'"):
        load_dataset("toy", keys=ImageKeys(size=4))


def test_unknown_source_key_lists_the_allowed_ones(toy):
    with pytest.raises(UserError) as err:
        TaskSpec.parse("toy:size=8")
    assert str(err.value) == (
        "task='toy:size=8' is invalid: allowed is DATASET:key=value with key one of classes, "
        "half, split, split_seed, per_class, fraction, val_fraction, val_per_class, seed, "
        "episode (any dataset); dim, scale, centred (source 'toy'); fix 'size=8'")
    with pytest.raises(UserError, match=r"^size=8 is invalid: allowed is key one of classes, "
                                        r".*; dim, scale, centred \(source 'toy'\); remove it"):
        TaskSpec("toy", size=8)
    with pytest.raises(UserError, match=r"dim=0 is invalid: allowed is an integer >= 1"):
        TaskSpec.parse("toy:dim=0")
    with pytest.raises(UserError, match=r"dim='x' is invalid: allowed is an integer"):
        TaskSpec.parse("toy:dim=x")
    with pytest.raises(UserError, match=r"centred='maybe' is invalid: allowed is true or false"):
        TaskSpec.parse("toy:centred=maybe")


def test_image_sources_keep_their_keys_and_strings():
    for text in ("digits:size=16", "mnist:classes=0-4:per_class=100:size=32",
                 "kmnist:classes=7,2,5:fraction=0.25:val_per_class=3:channels=3:seed=4",
                 "some/folder.zip:half=A:size=8"):
        spec = TaskSpec.parse(text)
        assert str(spec) == text and isinstance(spec.source_keys, ImageKeys)
    assert TaskSpec.parse("digits:size=16").size == 16
    assert TaskSpec.keys("mnist")[8:10] == ["size", "channels"]
    with pytest.raises(UserError, match=r"size, channels \(source 'mnist'\); fix 'dim=3'"):
        TaskSpec.parse("mnist:dim=3")
    with pytest.raises(UserError, match=r"size, channels \(image folders, .npz and in-memory "
                                        r"datasets\)"):
        TaskSpec.parse("mine.npz:dim=3")
    assert all(f.metadata.get("help") for f in dataclasses.fields(ImageKeys))
    assert get_source("digits").keys is ImageKeys and get_source("nope") is None


def test_register_source_rejects_bad_declarations(toy):
    with pytest.raises(UserError, match=r"name='toy' is invalid: allowed is a name not yet "
                                        r"registered"):
        register_source("toy", load_toy, keys=ToyKeys)
    with pytest.raises(UserError, match=r"name='a:b' is invalid"):
        register_source("a:b", load_toy)

    @dataclass(frozen=True)
    class Clash(SourceKeys):
        seed: int = field(default=0, metadata={"help": "clashes with the task seed"})

    @dataclass(frozen=True)
    class NoHelp(SourceKeys):
        dim: int = 3

    for keys, match in ((Clash, "keys='seed' is invalid: allowed is names other than the "
                                "generic task keys"),
                        (NoHelp, r"keys='dim' is invalid: allowed is fields with metadata"),
                        (dict, "a frozen dataclass derived from SourceKeys")):
        with pytest.raises(UserError, match=match):
            register_source("other", load_toy, keys=keys)
    with pytest.raises(UserError, match="modality='audio' is invalid"):
        register_source("other", load_toy, modality="audio")
    assert get_source("other") is None
