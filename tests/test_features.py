"""Frozen-prefix features: chained computation, the on-disk cache, and the memory layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.api import transfer
from transferlab.data import make_task
from transferlab.errors import UserError
from transferlab.features import FeatureCache, compute_split_features, prefix_features
from transferlab.models import build_model, wrap

FAST = {"epochs": 1, "batch_size": 64, "device": "cpu"}


@pytest.fixture(scope="module")
def task():
    return make_task("digits:classes=5-9:size=16")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("convnet", 5, 1, 16, width=4, fc_width=16)
    m.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding matters
        for _ in range(3):
            m(torch.randn(32, 1, 16, 16) * 2 + 1)
    return m.eval()


def test_features_from_a_cached_prefix_are_bit_identical(model, task):
    x = task.x_train[:300]
    for start in range(model.num_blocks):
        head = prefix_features(model, x, start, batch_size=128)
        for depth in range(start, model.num_blocks + 1):
            direct = prefix_features(model, x, depth, batch_size=128)
            chained = prefix_features(model, head, depth, batch_size=128, start=start)
            assert torch.equal(direct, chained), (start, depth)


def test_prefix_features_reject_a_start_beyond_the_depth(model, task):
    with pytest.raises(ValueError, match=r"start=3 must lie in 0..depth=2"):
        prefix_features(model, task.x_train[:4], 2, start=3)


def test_cache_extends_the_deepest_shallower_prefix(model, task, tmp_path):
    cache = FeatureCache(tmp_path)
    fresh = compute_split_features(model, task, 5)
    cache.get_or_compute(model, task, 2)
    assert cache.last_start == 0  # nothing to start from
    cache.get_or_compute(model, task, 3)
    assert cache.last_start == 2
    got = cache.get_or_compute(model, task, 5)
    assert cache.last_start == 3  # the deepest shallower entry, not the first found
    assert all(torch.equal(got[s], fresh[s]) for s in fresh)
    again = cache.get_or_compute(model, task, 5)
    assert cache.last_start == 5 and all(torch.equal(again[s], fresh[s]) for s in fresh)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3


def test_cache_entries_of_another_model_are_not_reused(model, task, tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute(model, task, 2)
    other = build_model("convnet", 5, 1, 16, width=4, fc_width=16)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.blocks[1][0].weight.add_(0.01)  # block 1 equal, block 2 differs
    got = cache.get_or_compute(other, task, 3)
    assert cache.last_start == 0
    assert torch.equal(got["train"], prefix_features(other.eval(), task.x_train, 3))


def test_a_corrupt_cache_entry_is_recomputed(model, task, tmp_path):
    cache = FeatureCache(tmp_path)
    good = cache.get_or_compute(model, task, 2)
    for p in tmp_path.glob("*.safetensors"):
        p.write_bytes(b"not a safetensors file")
    got = cache.get_or_compute(model, task, 3)
    assert cache.last_start == 0
    assert torch.equal(got["val"], prefix_features(model, good["val"], 3, start=2))


def test_the_layout_has_its_own_cache_entry(model, task, tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute(model, task, 2)
    cache.get_or_compute(model, task, 2, channels_last=False)
    assert cache.last_start == 0
    assert cache.key(model, "t", 2) != cache.key(model, "t", 2, channels_last=False)


def test_cached_features_keep_the_training_layout(model, task, tmp_path):
    from safetensors import safe_open

    cache = FeatureCache(tmp_path)
    fresh = cache.get_or_compute(model, task, 2)
    hit = cache.get_or_compute(model, task, 2)
    assert cache.last_start == 2
    for split in ("train", "test"):
        for t in (fresh[split], hit[split]):  # computed, then read back: no layout copy needed
            assert t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(fresh[split], hit[split])
    [path] = tmp_path.glob("*.safetensors")
    with safe_open(str(path), framework="pt") as f:  # stored as its memory is laid out
        n, c, h, w = fresh["train"].shape
        assert f.get_slice("train").get_shape() == [n, h, w, c]
    flat = FeatureCache(tmp_path / "flat").get_or_compute(model, task, 2, channels_last=False)
    assert flat["train"].is_contiguous()


@pytest.mark.parametrize("protocol", ["freeze:2", "finetune"])
def test_channels_last_changes_only_rounding(model, task, protocol):
    a = transfer(model, task, protocol, FAST, seed=1, progress=False)
    b = transfer(model, task, protocol, {**FAST, "channels_last": False}, seed=1,
                 progress=False)
    assert a.metrics["test_acc"] == pytest.approx(b.metrics["test_acc"], abs=0.01)
    assert a.metrics["test_nll"] == pytest.approx(b.metrics["test_nll"], rel=1e-3)
    for k, v in a.model.state_dict().items():
        assert v.is_contiguous(), k  # handed back in the default layout
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=1e-3, atol=1e-4)


class _ViewNet(nn.Module):
    """A user module that flattens with .view(), which channels_last activations refuse."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.reshape = _View()
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(self.reshape(self.pool(self.conv(x))))


class _View(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


def test_view_on_channels_last_activations_names_the_fix(task):
    torch.manual_seed(0)
    net = wrap(_ViewNet(), ["conv", "pool", "reshape"], "fc",
               example_input=task.x_train[:2])
    with pytest.raises(UserError, match=r"channels_last=True: .*\.view\(\).*"
                                        r"'channels_last': False"):
        transfer(net, task, "finetune", FAST, seed=0, progress=False)
    res = transfer(net, task, "finetune", {**FAST, "channels_last": False}, seed=0,
                   progress=False)
    assert res.metrics["outcome"] == "ok" and res.metrics["test_acc"] > 0.2


def test_parallel_requests_for_one_entry_compute_it_once(model, task, tmp_path, monkeypatch):
    import threading
    import time

    import transferlab.features as features

    calls = []
    real = features.prefix_features

    def slow(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)  # widen the window in which the other request arrives
        return real(*args, **kwargs)

    monkeypatch.setattr(features, "prefix_features", slow)
    caches = [FeatureCache(tmp_path) for _ in range(2)]
    out = [None, None]

    def work(i):
        out[i] = caches[i].get_or_compute(model, task, 3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 3  # one computation: train, val and test splits
    assert sorted(c.last_start for c in caches) == [0, 3]  # the other one waited and read
    assert all(torch.equal(out[0][s], out[1][s]) for s in out[0])


def test_sweep_trials_report_where_their_features_came_from(tmp_path):
    from transferlab.api import pretrain_checkpoint, run_trial

    src = str(tmp_path / "src")
    pretrain_checkpoint("digits:classes=0-4:size=16", src,
                        arch_kwargs={"width": 4, "fc_width": 16}, train=FAST)
    cfg = {"source": src + ".safetensors", "task": "digits:classes=5-9:size=16",
           "seed": 0, "train": FAST}
    feats = str(tmp_path / "features")
    got = [run_trial({**cfg, "protocol": p}, feats)["features_from_depth"]
           for p in ("freeze:2", "freeze:4", "freeze:4", "finetune")]
    assert got == [0, 2, 4, None]


def _fresh(model, x):
    """The prefix features with the folded-block memo emptied: what a first call computes."""
    import transferlab.features as feats

    feats._FUSED.clear()
    return prefix_features(model, x, model.num_blocks)


@pytest.mark.parametrize("change", ["optimiser step", "write through .data", "bn statistics",
                                    "load_state_dict", "replaced submodule"])
def test_a_kept_folded_block_is_never_stale(model, task, change):
    """The folded copies are kept between calls; any change to a block's weights, buffers
    or structure must make the next call fold it again (same bits as a fresh fold)."""
    import copy

    import transferlab.features as feats

    model = copy.deepcopy(model)  # the fixture is shared by the module's tests
    x = task.x_train[:16]
    before = prefix_features(model, x, model.num_blocks)
    assert all(b in feats._FUSED for b in model.blocks)  # the memo is in use
    assert torch.equal(prefix_features(model, x, model.num_blocks), before)
    first = next(model.blocks[0].parameters())
    with torch.no_grad():
        if change == "optimiser step":
            torch.optim.SGD(model.parameters(), lr=0.5).zero_grad()
            first.add_(0.1)
        elif change == "write through .data":
            first.data.mul_(1.5)  # bumps no version counter
        elif change == "load_state_dict":
            state = {k: v + 0.05 if v.is_floating_point() else v
                     for k, v in model.blocks[0].state_dict().items()}
            model.blocks[0].load_state_dict(state)
        elif change == "replaced submodule":
            i, conv = next((i, m) for i, m in enumerate(model.blocks[0])
                           if isinstance(m, nn.Conv2d))
            new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                            conv.stride, conv.padding)
            model.blocks[0][i] = new
    if change == "bn statistics":  # a train-mode forward updates running stats in place
        model.train()
        with torch.no_grad():
            model.blocks[0](task.x_train[:32])
        model.eval()
    after = prefix_features(model, x, model.num_blocks)
    assert not torch.equal(after, before)
    assert torch.equal(after, _fresh(model, x))
