"""``transferlab weights``: table, JSON with the library's numbers, bar plot."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from transferlab.analysis import compare_weights
from transferlab.checkpoint import save_checkpoint
from transferlab.cli import main
from transferlab.models import build_model


@pytest.fixture()
def pair(tmp_path):
    torch.manual_seed(0)
    model = build_model("convnet", num_classes=3, image_size=8, width=4, fc_width=8,
                        conv_stages=3)
    save_checkpoint(tmp_path / "before", model, {"task": "digits"})
    with torch.no_grad():
        model.blocks[3][1].weight.mul_(2)  # fc4's linear weight
    save_checkpoint(tmp_path / "after", model, {"task": "digits"})
    return tmp_path / "before", tmp_path / "after"


def test_cli_json_table_and_plot(pair, tmp_path, capsys):
    before, after = pair
    out = tmp_path / "w"
    assert main(["weights", "--before", str(before), "--after", str(after), "--out", str(out),
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "weights.json").read_text())
    assert printed["rows"] == saved["rows"]
    fc4 = [r for r in saved["rows"] if r["block"] == "fc4" and r["kind"] == "linear weight"]
    assert fc4[0]["rel_change"] == 1.0 and fc4[0]["cosine"] == pytest.approx(1.0, abs=1e-12)
    head = [r for r in saved["rows"] if r["block"] == "head"]
    assert {r["kind"] for r in head} == {"linear weight", "bias"}
    assert all(r["rel_change"] == 0 for r in saved["rows"] if r["block"] != "fc4")
    # BN beta starts at 0: cosine undefined -> null in JSON, not NaN
    beta = [r for r in saved["rows"] if r["kind"] == "bn beta"]
    assert beta and all(r["cosine"] is None for r in beta)
    with Image.open(out / "weights.png") as img:
        assert img.format == "PNG"

    assert main(["weights", "--before", str(before), "--after", str(after), "--out", str(out),
                 "--level", "tensor"]) == 0
    text = capsys.readouterr().out
    assert "blocks.3.1.weight" in text and "wrote" in text
    saved = json.loads((out / "weights.json").read_text())
    from safetensors.torch import load_file
    df = compare_weights(load_file(f"{before}.safetensors"), load_file(f"{after}.safetensors"),
                         level="tensor")
    got = {r["name"]: (r["kind"], r["abs_change"]) for r in saved["rows"]}
    assert got == {r.name: (r.kind, r.abs_change) for r in df.itertuples()}  # inferred kinds
    assert got["blocks.3.1.weight"][1] > 0


def test_cli_shape_mismatch(pair, tmp_path, capsys):
    before, _ = pair
    torch.manual_seed(0)
    other = build_model("convnet", num_classes=5, image_size=8, width=4, fc_width=8,
                        conv_stages=3)
    save_checkpoint(tmp_path / "other", other, {"task": "digits"})
    args = ["weights", "--before", str(before), "--after", str(tmp_path / "other"), "--out",
            str(tmp_path / "o")]
    assert main(args) == 2
    assert "'head.weight' has shape (3, 8) before but (5, 8) after" in capsys.readouterr().err
    assert main([*args, "--skip-mismatched", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == ["head.weight", "head.bias"]
