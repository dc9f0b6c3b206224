"""Sweep spec validation and grid expansion (no training: plan only)."""

from __future__ import annotations

import pytest
import yaml

from transferlab.errors import UserError
from transferlab.sweep import plan_sweep
from transferlab.sweep.runner import run_sweep

TARGET = "digits:classes=5-9:size=16"
ARCH = {"width": 4, "fc_width": 8}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """An untrained width-4 convnet source (7 blocks), saved as a checkpoint."""
    from transferlab.api import pretrain_checkpoint

    path = tmp_path_factory.mktemp("src") / "src"
    pretrain_checkpoint("digits:classes=0-4:size=16", str(path), arch_kwargs=ARCH,
                        train={"epochs": 0})
    return str(path) + ".safetensors"


def spec(ckpt, **over):
    base = {"name": "t", "target": TARGET, "sources": {"a": {"checkpoint": ckpt}},
            "axes": {"protocol": ["freeze"], "depth": [1, 2]}, "train": {"epochs": 1}}
    base.update(over)
    return base


def test_unknown_axis(ckpt):
    with pytest.raises(UserError, match=r"axes\.widht: unknown axis; allowed are protocol"):
        plan_sweep(spec(ckpt, axes={"protocol": ["finetune"], "widht": [1, 2]}))


def test_unknown_protocol(ckpt):
    with pytest.raises(UserError, match=r"axes\.protocol\[1\]: protocol='freez' is invalid"):
        plan_sweep(spec(ckpt, axes={"protocol": ["finetune", "freez"]}))


def test_depth_beyond_model(ckpt):
    with pytest.raises(UserError, match=r"axes\.depth\[2\]: 9 is beyond the model's 7 blocks "
                                        r"\(source 'a'\); allowed are 0\.\.7"):
        plan_sweep(spec(ckpt, axes={"protocol": ["freeze"], "depth": [1, 3, 9]}))


def test_explicit_protocol_depth_beyond_model(ckpt):
    with pytest.raises(UserError, match=r"axes\.protocol\[0\]: 'reinit:8' is beyond"):
        plan_sweep(spec(ckpt, axes={"protocol": ["reinit:8"]}))


def test_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(UserError, match=r"sources\.a\.checkpoint: .*nope\.safetensors' does "
                                        r"not exist"):
        plan_sweep(spec(str(missing), axes={"protocol": ["finetune"]}))


def test_every_problem_reported_at_once(ckpt, tmp_path):
    bad = spec(ckpt, axes={"protocol": ["nope", "freeze"], "depth": [99], "colour": [1]},
               train={"epochs": 1, "lr": -1}, extra_field=1)
    bad["sources"]["b"] = {"checkpoint": str(tmp_path / "gone")}
    with pytest.raises(UserError) as info:
        plan_sweep(bad)
    msg = str(info.value)
    for path in ("extra_field: unknown field", "train: lr=-1", "sources.b.checkpoint",
                 "axes.colour: unknown axis", "axes.protocol[0]:", "axes.depth[0]: 99 is "
                 "beyond"):
        assert path in msg, path
    assert "has 6 problems" in msg


def test_source_needs_exactly_one_kind(ckpt):
    bad = spec(ckpt, sources={"a": {"checkpoint": ckpt, "pretrain": {"task": TARGET}}})
    with pytest.raises(UserError, match=r"sources\.a: give exactly one of 'checkpoint' or "
                                        r"'pretrain'"):
        plan_sweep(bad)


def test_protocol_needing_depth_without_depth_axis(ckpt):
    with pytest.raises(UserError, match=r"axes\.protocol\[0\]: 'freeze' needs a depth"):
        plan_sweep(spec(ckpt, axes={"protocol": ["freeze"]}))


def test_depth_all_expands_to_interior_depths(ckpt):
    plan = plan_sweep(spec(ckpt, axes={"protocol": ["freeze", "reinit+", "finetune"],
                                       "depth": "all", "seed": 2}))
    protos = [c.protocol for c in plan.cells if c.seed == 0]
    # L = 7 blocks: depths 1..6 for each depth protocol, finetune once (depth-less).
    assert protos == [f"freeze:{n}" for n in range(1, 7)] + \
        [f"reinit+:{n}" for n in range(1, 7)] + ["finetune"]
    assert len(plan.cells) == 2 * 13
    assert {c.labels["depth"] for c in plan.cells if c.protocol == "finetune"} == {None}


def test_axes_override_train_and_task(ckpt):
    plan = plan_sweep(spec(ckpt, axes={"protocol": ["finetune"], "lr": ["1e-3", 0.1],
                                       "per_class": [5, 10]}, train={"epochs": 2, "lr": 0.5}))
    got = sorted((c.train["lr"], c.task, c.train["epochs"]) for c in plan.cells)
    assert got == [(0.001, "digits:classes=5-9:per_class=10:size=16", 2),
                   (0.001, "digits:classes=5-9:per_class=5:size=16", 2),
                   (0.1, "digits:classes=5-9:per_class=10:size=16", 2),
                   (0.1, "digits:classes=5-9:per_class=5:size=16", 2)]


def test_yaml_relative_checkpoint(ckpt, tmp_path):
    import shutil
    from pathlib import Path

    for ext in (".safetensors", ".json"):
        shutil.copy(Path(ckpt).with_suffix(ext), tmp_path / f"mine{ext}")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec("mine.safetensors", axes={"protocol": ["finetune"]})))
    plan = plan_sweep(str(path))
    assert plan.sources["a"].checkpoint == str((tmp_path / "mine.safetensors").resolve())


def test_bad_spec_leaves_existing_db_untouched(ckpt, tmp_path):
    db = tmp_path / "r.sqlite"
    good = spec(ckpt, axes={"protocol": ["freeze:1"]})
    run_sweep(good, db, workers=1, progress=False,
              trial_fn="transferlab.sweep.testing:fake_trial")
    before = db.read_bytes()
    with pytest.raises(UserError, match="unknown axis"):
        run_sweep(spec(ckpt, axes={"protocol": ["freeze:1"], "bogus": [1]}), db,
                  progress=False)
    assert db.read_bytes() == before
