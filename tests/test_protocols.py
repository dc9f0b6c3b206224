"""Protocols: exactly the intended parameters and BatchNorm statistics change."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from transferlab.errors import UserError
from transferlab.models import build_model, wrap
from transferlab.protocols import get_protocol, make_plan, protocol_names, resolve_train
from transferlab.protocols.bn_adapt import adapt_bn_stats
from transferlab.protocols.core import _kind_params
from transferlab.train import TrainConfig, fit

L = 7  # convnet blocks


def _source() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("convnet", num_classes=4, in_channels=1, image_size=8, width=4,
                        fc_width=8)
    # Give BatchNorm non-trivial statistics, as a pretrained source would have.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 1, 8, 8))
    return model


def _run(protocol, src, x, y, **train):
    """What ``api.transfer`` does with a protocol, on given inputs: its plan, then its own
    fit or the SGD loop with its hooks."""
    model = copy.deepcopy(src)
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    cfg = resolve_train(proto.config, TrainConfig(
        **{"epochs": 2, "batch_size": 16, "lr": 0.1, "weight_decay": 1e-3, "device": "cpu",
           **train}))
    plan = proto.config.plan(model, 3, generator=torch.Generator().manual_seed(1),
                             lr_mult=cfg.lr_mult)
    g = torch.Generator().manual_seed(0)
    task = SimpleNamespace(y_train=y, y_val=y[:8])
    start = plan.frozen_prefix  # the frozen prefix runs once, as with the feature cache
    with torch.no_grad():
        h = copy.deepcopy(model).eval().features(x, start)
    if proto.config.fit(plan, {"train": h, "val": h[:8]}, task, cfg) is None:
        hooks = {"loss_term": lambda _m: proto.config.loss_term(plan),
                 "after_step": lambda _m: proto.config.after_step(plan)}
        fit(model, h, y, h[:8], y[:8], cfg, plan.groups, start=start,
            frozen_modules=plan.frozen_modules, generator=g, progress=False, **hooks)
    return model, plan


def _data(n=48, shape=(1, 8, 8)):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def _train_few_steps(protocol: str, steps_data: int = 48, **train):
    src = _source()
    model, plan = _run(protocol, src, *_data(steps_data), **train)
    return src, model, plan


def _changed(src, model) -> set[str]:
    a, b = src.state_dict(), model.state_dict()
    return {k for k in a if not k.startswith("head.") and k in b
            and (a[k].shape != b[k].shape or not torch.equal(a[k], b[k]))}


def _keys(model, blocks, suffixes=None):
    out = set()
    for k in model.state_dict():
        if not k.startswith("blocks."):
            continue
        i = int(k.split(".")[1])
        if i in blocks and (suffixes is None or k.endswith(suffixes)):
            if k.endswith("num_batches_tracked"):
                continue
            out.add(k)
    return out


def _drop_counters(keys):
    return {k for k in keys if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("n", [0, 3, L])
def test_freeze_n_changes_exactly_the_blocks_above_n(n):
    src, model, plan = _train_few_steps(f"freeze:{n}")
    assert _drop_counters(_changed(src, model)) == _keys(src, set(range(n, L)))
    assert plan.frozen_prefix == n


@pytest.mark.parametrize("plus", [False, True])
def test_reinit_n_reinitialises_above_and_freezes_or_tunes_below(plus):
    n = 2
    src, model, plan = _train_few_steps(f"reinit{'+' if plus else ''}:{n}")
    expected = _keys(src, set(range(n, L)) | (set(range(n)) if plus else set()))
    assert _drop_counters(_changed(src, model)) == expected
    assert plan.reinitialised == [f"conv{i}" for i in range(3, 6)] + ["fc6", "fc7"]
    assert plan.frozen_prefix == (0 if plus else n)


@pytest.mark.parametrize("name", ["bn-only", "norm-only"])
def test_bn_only_moves_bn_affine_and_running_stats_only(name):
    src, model, _ = _train_few_steps(name)
    bn_suffixes = (".1.weight", ".1.bias", ".1.running_mean", ".1.running_var")
    conv_blocks = set(range(5))
    assert _drop_counters(_changed(src, model)) == _keys(src, conv_blocks, bn_suffixes)


def test_conv_only_moves_weights_and_bn_statistics_but_not_bn_affine():
    src, model, _ = _train_few_steps("conv-only")
    changed = _drop_counters(_changed(src, model))
    expected = _keys(src, set(range(5)), (".0.weight", ".1.running_mean", ".1.running_var")) \
        | _keys(src, {5}, (".1.weight",)) | _keys(src, {6}, (".0.weight",))
    assert changed == expected


@pytest.mark.parametrize("name", ["head-only", "linear-probe"])
def test_head_protocols_freeze_every_block(name):
    model = _source()
    plan = make_plan(get_protocol(name).config, model, num_classes=3)
    assert plan.frozen_prefix == L
    assert plan.trainable_names() == {"head.weight", "head.bias"}


def test_finetune_uses_lr_mult_for_pretrained_blocks_and_layer_decay():
    model = _source()
    plan = make_plan(get_protocol("finetune").config, model, 3, layer_decay=0.5)
    scales = {g["name"]: g["lr_scale"] for g in plan.groups}
    assert scales["head"] == 1.0
    assert scales["fc7"] == pytest.approx(0.1)
    assert scales["conv1"] == pytest.approx(0.1 * 0.5 ** 6)


def test_reinit_plus_trains_reinitialised_blocks_at_full_lr():
    plan = make_plan(get_protocol("reinit+:2").config, _source(), 3, lr_mult=0.1)
    scales = {g["name"]: g["lr_scale"] for g in plan.groups}
    assert scales["conv1"] == pytest.approx(0.1) and scales["conv3"] == 1.0


def test_reinit_is_seeded_independently_of_global_rng():
    a = make_plan(get_protocol("scratch").config, _source(), 3,
                  generator=torch.Generator().manual_seed(5)).model
    torch.randn(100)  # consume global RNG
    b = make_plan(get_protocol("scratch").config, _source(), 3,
                  generator=torch.Generator().manual_seed(5)).model
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_every_preset_is_registered():
    names = set(protocol_names())
    assert {"linear-probe", "freeze:n", "reinit:n", "reinit+:n", "finetune", "bn-only",
            "conv-only", "head-only", "scratch", "norm-only", "l2sp", "bn-adapt",
            "finetune-frozen-stats", "bn-only-frozen-stats", "freeze-frozen-stats:n"} <= names


@pytest.mark.parametrize("bad, match", [
    ("freez:3", r"protocol='freez:3' is invalid: allowed are .*freeze:n"),
    ("freeze", r"freeze needs a depth, as in 'freeze:3'"),
    ("finetune:2", r"finetune takes no depth"),
])
def test_bad_protocol_names(bad, match):
    with pytest.raises(UserError, match=match):
        get_protocol(bad)


def test_depth_by_block_name():
    plan = make_plan(get_protocol("freeze:conv3").config, _source(), 3)
    assert plan.depth == 3 and plan.frozen_prefix == 3
    with pytest.raises(UserError, match=r"block='conv9' is invalid: allowed is one of this "
                                        r"model's blocks: conv1, conv2, .*fc7"):
        make_plan(get_protocol("reinit:conv9").config, _source(), 3)


def test_depth_beyond_model_is_an_error():
    with pytest.raises(UserError, match=r"depth=9 is invalid: allowed is 0\.\.7 for this model"):
        make_plan(get_protocol("freeze:9").config, _source(), 3)


# -- new presets on the convnet: exactly the intended parameters and buffers change ---------
STATS = (".running_mean", ".running_var")


def test_l2sp_moves_every_block_like_finetune():
    src, model, plan = _train_few_steps("l2sp")
    assert _drop_counters(_changed(src, model)) == _keys(src, set(range(L)))
    assert all(g["weight_decay"] == 0.0 for g in plan.groups)  # the penalty replaces it


@pytest.mark.parametrize("name", ["finetune-frozen-stats", "l2sp-frozen-stats"])
def test_frozen_stats_variants_move_weights_but_not_running_stats(name):
    src, model, plan = _train_few_steps(name)
    every = _keys(src, set(range(L)))
    assert _drop_counters(_changed(src, model)) == {k for k in every if not k.endswith(STATS)}
    assert plan.frozen_prefix == 0  # blocks train: nothing to cache


def test_conv_only_frozen_stats_moves_only_conv_and_linear_weights():
    src, model, _ = _train_few_steps("conv-only-frozen-stats")
    expected = _keys(src, set(range(5)), (".0.weight",)) | _keys(src, {5}, (".1.weight",)) \
        | _keys(src, {6}, (".0.weight",))
    assert _drop_counters(_changed(src, model)) == expected


def test_frozen_stats_option_equals_the_registered_variant():
    by_option = get_protocol("bn-only", freeze_norm_stats=True).config
    assert by_option.to_dict() == get_protocol("bn-only-frozen-stats").config.to_dict()
    assert get_protocol("freeze-frozen-stats:3").config.depth == 3


def test_bn_adapt_moves_only_running_stats_and_the_mean_is_the_input_mean():
    src = _source()
    x, y = _data(50)  # batch_size 16: batches of 12 and 13, so weighting by size matters
    model, plan = _run("bn-adapt", src, x, y, l2=1e-2)
    assert _drop_counters(_changed(src, model)) == _keys(src, set(range(5)), STATS)
    assert plan.frozen_prefix == 0 and plan.trainable_names() == {"head.weight", "head.bias"}
    with torch.no_grad():
        conv1_out = src.blocks[0][0](x)  # the first BatchNorm's input, unaffected by any BN
    torch.testing.assert_close(model.blocks[0][1].running_mean, conv1_out.mean((0, 2, 3)),
                               rtol=1e-5, atol=1e-6)
    # The head is the linear probe fitted on the adapted features, computed independently.
    from transferlab.protocols.linear_probe import fit_probe

    ref = copy.deepcopy(model)
    with torch.no_grad():
        feats = ref.eval().features(x, L)
    fit_probe(ref, feats, y, feats[:8], y[:8], l2=1e-2)
    # (bn-adapt's features come through the folded prefix: float rounding that L-BFGS's
    # stopping point turns into ~1e-3 relative differences of the head)
    torch.testing.assert_close(model.head.weight, ref.head.weight, rtol=3e-3, atol=1e-3)


def test_adapt_bn_stats_leaves_parameters_and_mode_alone():
    model = _source().eval()
    before = {k: v.clone() for k, v in model.named_parameters()}
    adapt_bn_stats(model, _data(20)[0], batch_size=8)
    assert not model.training and all(not m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.named_parameters())


def test_l2sp_penalty_and_its_gradient_in_closed_form():
    model = _source()
    cfg = get_protocol("l2sp", alpha=0.3, beta=0.2).config
    plan = cfg.plan(model, 3, generator=torch.Generator().manual_seed(1))
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    model.zero_grad()
    term = cfg.loss_term(plan)
    term.backward()
    value = 0.0
    for n, p in model.named_parameters():
        if n == "head.weight":
            want = 0.2 * p.detach()
            value += 0.1 * p.detach().pow(2).sum()
        elif n.startswith("head."):
            want = torch.zeros_like(p)  # biases are not penalised
        else:
            want = 0.3 * (p.detach() - theta0[n])
            value += 0.15 * (p.detach() - theta0[n]).pow(2).sum()
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        torch.testing.assert_close(got, want, msg=n)
    torch.testing.assert_close(term.detach(), value)


def test_l2sp_with_a_large_alpha_stays_near_the_pretrained_weights():
    src = _source()
    x, y = _data(64)
    dist = {}
    for name, proto in [("finetune", get_protocol("finetune")),
                        ("l2sp", get_protocol("l2sp", alpha=8.0, beta=0.0))]:
        model, _ = _run(proto, src, x, y, lr_mult=1.0, weight_decay=0.0, epochs=3)
        dist[name] = sum((p - q).pow(2).sum().item() for p, q in
                         zip(model.blocks.parameters(), src.blocks.parameters()))
    assert dist["finetune"] > 0 and dist["l2sp"] < 0.1 * dist["finetune"], dist


def test_l2sp_validates_its_fields():
    with pytest.raises(UserError, match=r"alpha=-1.0 is invalid: allowed is a number >= 0"):
        get_protocol("l2sp", alpha=-1.0)


# -- any architecture: LayerNorm, attention, and kinds a model lacks --------------------
def _ln_model():
    """A small wrapped MLP with LayerNorm (no BatchNorm), as a transformer has."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 8),
                        nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():  # non-trivial affine, as a pretrained model has
        for m in net:
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return wrap(net, ["0+1+2", "3+4+5"], "6")


_LN = {"blocks.0.1.weight", "blocks.0.1.bias", "blocks.1.1.weight", "blocks.1.1.bias"}
_LIN_W = {"blocks.0.0.weight", "blocks.1.0.weight"}
_ALL = _LN | _LIN_W | {"blocks.0.0.bias", "blocks.1.0.bias"}


@pytest.mark.parametrize("name, expected", [
    ("norm-only", _LN), ("conv-only", _LIN_W), ("finetune", _ALL), ("l2sp", _ALL),
    ("head-only", set()), ("linear-probe", set()),
    ("freeze:1", {k for k in _ALL if k.startswith("blocks.1.")}),
    ("norm-only-frozen-stats", _LN),  # LayerNorm has no running statistics to freeze
])
def test_layernorm_model_changes_exactly_the_intended_parameters(name, expected):
    src = _ln_model()
    x, y = _data(48, (6,))
    model, _ = _run(name, src, x, y, channels_last=False)
    assert _changed(src, model) == expected


def test_bn_only_without_batchnorm_is_an_error_naming_norm_only():
    with pytest.raises(UserError, match=r"train_kinds='bn' is invalid for this model: it "
                                        r"matches no parameter.*kinds present: norm, weights"
                                        r".*module types: Linear, LayerNorm.*'norm-only'"):
        make_plan(get_protocol("bn-only").config, _ln_model(), 3)
    no_norm = build_model("mlp", 3, 1, 4, width=8, depth=2)
    with pytest.raises(UserError, match=r"train_kinds='norm' is invalid.*no normalisation "
                                        r"layer"):
        make_plan(get_protocol("norm-only").config, no_norm, 3)
    with pytest.raises(UserError, match=r"protocol='bn-adapt' is invalid for this model: it "
                                        r"has no BatchNorm"):
        get_protocol("bn-adapt").config.plan(_ln_model(), 3)
    # A frozen prefix does not count: freeze:L trains no block, so no kind is needed.
    make_plan(get_protocol("freeze:2").config, _ln_model(), 3)


class T5LayerNorm(nn.Module):  # HF-style norm that is not an nn.LayerNorm subclass
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(8))


def test_kinds_find_attention_projections_and_every_norm():
    block = nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2), "ln": nn.LayerNorm(8),
                           "gn": nn.GroupNorm(2, 8), "inorm": nn.InstanceNorm1d(8, affine=True),
                           "t5": T5LayerNorm(), "bn": nn.BatchNorm1d(8)})
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(_kind_params(block, "weights")) == ids([block["attn"].in_proj_weight,
                                                      block["attn"].out_proj.weight])
    norms = [block[k] for k in ("ln", "gn", "inorm", "t5", "bn")]
    assert ids(_kind_params(block, "norm")) == ids(p for m in norms for p in m.parameters())
    assert ids(_kind_params(block, "bn")) == ids(block["bn"].parameters())


def test_lr_mult_has_one_home_in_train_config():
    with pytest.raises(UserError, match=r"lr_mult=0.5 is invalid: lr_mult lives in TrainConfig"):
        get_protocol("finetune", lr_mult=0.5)
    with pytest.raises(UserError, match=r"protocol options \['alfa'\] are invalid for l2sp: "
                                        r"allowed are \[.*'alpha'"):
        get_protocol("l2sp", alfa=1.0)
    assert "lr_mult" not in get_protocol("finetune").config.to_dict()
    resolved = {p: resolve_train(get_protocol(p).config, TrainConfig()).lr_mult
                for p in ("finetune", "freeze:2", "l2sp")}
    assert resolved == {"finetune": 0.1, "freeze:2": 1.0, "l2sp": 1.0}
    assert resolve_train(get_protocol("finetune").config, TrainConfig(lr_mult=0.3)).lr_mult == 0.3
    from transferlab.sweep import foundation as fd

    # One run, one trial key: lr_mult unset and set to the protocol's default are the same.
    assert fd.resolve_train({}, protocol="finetune") == \
        fd.resolve_train({"lr_mult": 0.1}, protocol="finetune")
    assert fd.resolve_train({}, protocol="finetune") != fd.resolve_train({}, protocol="freeze:1")


def test_cli_bn_only_on_a_model_without_batchnorm_exits_2(tmp_path, capsys):
    from transferlab.cli import main

    out = tmp_path / "mlp"
    assert main(["pretrain", "--task", "digits:classes=0-4:size=8", "--arch", "mlp",
                 "--arch-kwargs", '{"width": 8, "depth": 2}', "--out", str(out),
                 "--epochs", "0", "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    base = ["transfer", "--source", str(out) + ".safetensors", "--task",
            "digits:classes=5-9:size=8", "--device", "cpu", "--quiet"]
    for extra, match in [(["--protocol", "bn-only"], "'norm-only'"),
                         (["--protocol", "l2sp", "--protocol-options", '{"alfa": 1}'],
                          "protocol options ['alfa'] are invalid for l2sp")]:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err


@pytest.mark.parametrize("name, changed_blocks", [
    ("finetune", set(range(L))), ("scratch", set(range(L))), ("head-only", set()),
    ("linear-probe", set()), ("freeze-frozen-stats:7", set()),
])
def test_remaining_presets_change_exactly_their_blocks(name, changed_blocks):
    src, model, _ = _train_few_steps(name)
    assert _drop_counters(_changed(src, model)) == _keys(src, changed_blocks)


def test_transfer_calls_a_protocols_after_step_hook_once_per_step():
    from dataclasses import dataclass

    from transferlab.api import transfer
    from transferlab.data import make_task
    from transferlab.protocols import Protocol, ProtocolConfig

    calls = []

    @dataclass
    class Clamped(ProtocolConfig):  # a projection after each step: head weights in [-c, c]
        freeze_prefix: bool = False

        def after_step(self, plan):
            calls.append(1)
            with torch.no_grad():
                plan.model.head.weight.clamp_(-0.01, 0.01)

    task = make_task("digits:classes=0-2:size=8")
    model = build_model("convnet", 3, 1, 8, width=4, fc_width=8)
    res = transfer(model, task, Protocol("clamped", "clamped", Clamped()),
                   {"epochs": 1, "batch_size": 64, "device": "cpu"}, progress=False)
    assert len(calls) == -(-task.n_train // 64) == res.metrics["steps"]
    assert res.model.head.weight.abs().max() <= 0.01


def test_bn_only_frozen_stats_moves_only_bn_affine_and_keeps_statistics_bit_identical():
    src, model, _ = _train_few_steps("bn-only-frozen-stats")
    assert _drop_counters(_changed(src, model)) == _keys(src, set(range(5)),
                                                         (".1.weight", ".1.bias"))
    for k, v in src.state_dict().items():
        if k.endswith(STATS):
            assert torch.equal(model.state_dict()[k], v), k  # bit-identical, not just close


# The few-shot study's protocols through the public `transfer` on a real (digits) task,
# the trained model compared with the state it started from (analysis.weights.initial_state:
# the new head against its own seeded initialisation). Expected: which (kind) moved.
_AFFINE, _STAT = {"bn gamma", "bn beta"}, {"bn running_mean", "bn running_var"}
_WEIGHTS = {"conv weight", "linear weight", "bias"}


@pytest.mark.parametrize("name, moved", [
    ("linear-probe", set()), ("head-only", set()), ("bn-adapt", _STAT),
    ("bn-only", _AFFINE | _STAT), ("bn-only-frozen-stats", _AFFINE),
    ("conv-only", {"conv weight", "linear weight"} | _STAT),
    ("conv-only-frozen-stats", {"conv weight", "linear weight"}),
    ("finetune", _WEIGHTS | _AFFINE | _STAT), ("finetune-frozen-stats", _WEIGHTS | _AFFINE),
])
def test_fewshot_protocols_through_transfer_move_exactly_their_kinds(name, moved):
    from transferlab.analysis.weights import compare_weights, initial_state, parameter_kinds
    from transferlab.api import transfer
    from transferlab.data import make_task
    from transferlab.models import block_of_parameter

    src = _source()
    task = make_task("digits:classes=5-9:per_class=4:val_fraction=0:size=8")
    res = transfer(src, task, name, train={"epochs": 3, "lr": 0.1, "device": "cpu"}, seed=0,
                   progress=False)
    before = initial_state(src, name, task.num_classes, seed=0)
    df = compare_weights(before, res.model.state_dict(), block_of_parameter(res.model),
                         parameter_kinds(res.model))
    blocks = df[df["block"] != "head"]
    changed = set(blocks[blocks["abs_change"] > 0]["kind"])
    assert changed == moved
    if _STAT - moved:  # statistics that must not move are bit-identical
        stats = blocks[blocks["kind"].isin(_STAT)]
        assert (stats["abs_change"] == 0).all()
    head = df[df["block"] == "head"]
    assert (head["abs_change"] > 0).all()  # the new head always trains
