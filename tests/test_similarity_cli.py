"""``transferlab similarity``: JSON/PNG outputs agree with the library on the same inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.checkpoint import save_checkpoint
from transferlab.cli import main
from transferlab.data import make_task
from transferlab.models import build_model
from transferlab.similarity.blockwise import block_similarity

TASK = "digits:classes=0-2:size=8"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("convnet", num_classes=3, image_size=8, width=4, fc_width=8,
                            conv_stages=3)
        paths.append(root / f"m{seed}")
        save_checkpoint(paths[-1], model, {"task": TASK})
    return paths


def test_cli_writes_json_and_heatmap_matching_the_library(ckpts, tmp_path, capsys):
    a, b = ckpts
    out = tmp_path / "out"
    assert main(["similarity", "--a", str(a), "--b", str(b), "--task", TASK,
                 "--n-samples", "100000", "--out", str(out), "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "similarity.json").read_text())
    assert printed["matrix"] == saved["matrix"]
    assert saved["metric"] == "linear_cka"
    assert saved["a"]["blocks"] == ["conv1", "conv2", "conv3", "fc4", "fc5"]
    assert saved["a"]["task"] == TASK and saved["b"]["checkpoint"] == str(b)
    assert {"versions", "commit", "time"} <= set(saved["provenance"])
    task = make_task(TASK, progress=False)
    assert saved["inputs"]["n_samples"] == len(task.x_test)  # all of the split
    from transferlab.checkpoint import load_checkpoint
    want = block_similarity(load_checkpoint(a)[0], load_checkpoint(b)[0], task.x_test)
    np.testing.assert_allclose(np.array(saved["matrix"]), want, atol=1e-9)
    with Image.open(out / "similarity.png") as img:
        assert img.format == "PNG" and img.size[0] > 200


def test_cli_same_checkpoint_subset_and_table(ckpts, tmp_path, capsys):
    a, _ = ckpts
    out = tmp_path / "self"
    assert main(["similarity", "--a", str(a), "--b", str(a) + ".safetensors", "--task", TASK,
                 "--metric", "debiased_linear_cka", "--n-samples", "50", "--out", str(out),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "debiased_linear_cka: rows = A" in text and "conv1" in text
    saved = json.loads((out / "similarity.json").read_text())
    matrix = np.array(saved["matrix"])
    assert saved["inputs"]["n_samples"] == 50
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)


def test_cli_errors(ckpts, tmp_path, capsys):
    a, _ = ckpts
    code = main(["similarity", "--a", str(a), "--b", str(tmp_path / "missing"), "--task", TASK,
                 "--out", str(tmp_path), "--quiet"])
    assert code == 2
    assert "checkpoint=" in capsys.readouterr().err
    assert main(["similarity", "--a", str(a), "--b", str(a), "--task", TASK, "--n-samples",
                 "1", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--n-samples=1 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["similarity", "--a", str(a), "--b", str(a), "--task", TASK, "--metric", "cka",
              "--out", str(tmp_path)])
