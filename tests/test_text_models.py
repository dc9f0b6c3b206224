"""Text encoders as BlockModels: a tiny BERT (random weights, built from a BertConfig, no
download) wrapped as embeddings + layers + pooled head, checked against the HF forward and
run through transfer() with the protocols' "exactly the intended parameters moved" test."""

from __future__ import annotations

import pytest
import torch

from transferlab import transfer
from transferlab.data import Task, TaskSpec
from transferlab.data.batching import batches, trim_padding
from transferlab.errors import UserError
from transferlab.features import FeatureCache, compute_split_features, prefix_features
from transferlab.inputs import Hidden, TokenInputs
from transferlab.models import build_model, head_input, head_linear, hf_encoder, rebuild
from transferlab.models.heads import pool_features
from transferlab.protocols.linear_probe import fit_logistic, standardized_features

transformers = pytest.importorskip("transformers")

VOCAB, HIDDEN = 100, 32
TRAIN = {"epochs": 2, "batch_size": 16, "lr": 0.05, "device": "cpu"}


def tiny_bert(seed: int = 0, impl: str = "eager", dropout: float = 0.1):
    cfg = transformers.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64,
                                  max_position_embeddings=32, hidden_dropout_prob=dropout,
                                  attention_probs_dropout_prob=dropout)
    cfg._attn_implementation = impl
    torch.manual_seed(seed)
    return transformers.BertModel(cfg, add_pooling_layer=False).eval()


def padded_tokens(n: int, length: int, gen: torch.Generator) -> TokenInputs:
    """Random ids, right-padded (id 0) to ``length``; every row has 2..length tokens."""
    ids = torch.randint(1, VOCAB, (n, length), generator=gen)
    lens = torch.randint(2, length + 1, (n,), generator=gen)
    mask = (torch.arange(length)[None, :] < lens[:, None]).long()
    return TokenInputs(ids * mask, mask)


def token_task(n_train: int = 48, n_val: int = 12, n_test: int = 24, length: int = 12,
               seed: int = 0) -> Task:
    """A 3-class token task built directly (label = first token's id mod 3: learnable)."""
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for n in (n_train, n_val, n_test):
        x = padded_tokens(n, length, gen)
        parts += [x, x.input_ids[:, 0] % 3]
    return Task(TaskSpec.parse("tokens"), ("a", "b", "c"), *parts)


def mean_pooled_reference(hf, x: TokenInputs) -> torch.Tensor:
    """The HF model's own last_hidden_state, mean-pooled over unmasked tokens: (N, H)."""
    with torch.no_grad():
        h = hf(input_ids=x.input_ids, attention_mask=x.attention_mask).last_hidden_state
    m = x.attention_mask.unsqueeze(-1).float()
    return (h * m).sum(1) / m.sum(1)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_blocks_reproduce_the_hf_forward_on_padded_batches(impl):
    hf = tiny_bert(impl=impl)
    model = hf_encoder(hf, num_classes=3).eval()
    x = padded_tokens(10, 16, torch.Generator().manual_seed(1))
    x = TokenInputs(torch.cat([x.input_ids, torch.zeros(10, 4, dtype=torch.long)], 1),
                    torch.cat([x.attention_mask, torch.zeros(10, 4, dtype=torch.long)], 1))
    ref = mean_pooled_reference(hf, x)
    with torch.no_grad():
        feats = model.features(x, model.num_blocks)
        trimmed = model.features(trim_padding(x), model.num_blocks)
    assert isinstance(feats, Hidden) and feats.hidden.shape == (10, 20, HIDDEN)
    assert trimmed.hidden.shape[1] <= 16  # the 4 all-padding columns are not computed
    assert torch.allclose(pool_features(feats, "mean"), ref, atol=1e-5)
    assert torch.allclose(pool_features(trimmed, "mean"), ref, atol=1e-5)
    assert torch.allclose(head_input(model, feats), ref, atol=1e-5)
    with torch.no_grad():
        logits = model(x)
    lin = head_linear(model)
    assert torch.allclose(logits, ref @ lin.weight.T + lin.bias, atol=1e-5)


def test_cls_pool_reads_the_first_token():
    hf = tiny_bert()
    model = hf_encoder(hf, num_classes=2, pool="cls").eval()
    x = padded_tokens(6, 10, torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = hf(input_ids=x.input_ids, attention_mask=x.attention_mask).last_hidden_state[:, 0]
        got = head_input(model, model.features(x, model.num_blocks))
    assert torch.allclose(got, ref, atol=1e-5)


def test_wrong_inputs_and_non_encoders_are_user_errors():
    model = hf_encoder(tiny_bert(), num_classes=2)
    with pytest.raises(UserError, match="TokenInputs"):
        model(torch.zeros(2, 5))
    with pytest.raises(UserError, match="not a BERT-like encoder"):
        hf_encoder(torch.nn.Linear(3, 3), num_classes=2)
    with pytest.raises(UserError, match="pool"):
        hf_encoder(tiny_bert(), num_classes=2, pool="flatten")


def test_trim_padding_drops_only_trailing_all_padding_columns():
    mask = torch.tensor([[0, 1, 1, 0, 0], [0, 1, 0, 0, 0]])
    x = TokenInputs(torch.arange(10).view(2, 5), mask)
    t = trim_padding(x)
    assert t.input_ids.tolist() == [[0, 1, 2], [5, 6, 7]]  # leading column kept
    assert t.attention_mask.tolist() == [[0, 1, 1], [0, 1, 0]]
    h = Hidden(torch.randn(2, 5, 3), mask)
    assert torch.equal(trim_padding(h).hidden, h.hidden[:, :3])
    img = torch.randn(2, 1, 4, 4)
    assert trim_padding(img) is img
    # batches: labels stay aligned with their rows, each batch trimmed to its own longest row
    task = token_task()
    lens = task.x_train.attention_mask.sum(1)
    seen = 0
    for xb, yb in batches(task.x_train, task.y_train, 8, shuffle=True,
                          generator=torch.Generator().manual_seed(0)):
        assert xb.input_ids.shape[1] == int(xb.attention_mask.sum(1).max())
        assert torch.equal(yb, xb.input_ids[:, 0] % 3)
        seen += len(yb)
    assert seen == len(task.y_train) and int(lens.max()) <= 12


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def _block_of(name: str) -> str:
    if name.startswith("head."):
        return "head"
    return ["embeddings", "layer1", "layer2"][int(name.split(".")[1])]


@pytest.mark.parametrize("protocol,moved", [
    ("freeze:2", {"layer2", "head"}),
    ("finetune", {"embeddings", "layer1", "layer2", "head"}),
    ("head-only", {"head"}),
    ("linear-probe", {"head"}),
])
def test_transfer_moves_exactly_the_intended_blocks(protocol, moved):
    source = hf_encoder(tiny_bert(), num_classes=3)
    task = token_task()
    before = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("head.")}
    train = {**TRAIN, "l2": 1e-2} if protocol == "linear-probe" else TRAIN  # one L-BFGS fit
    res = transfer(source, task, protocol, train, seed=0, progress=False)
    after = res.model.state_dict()
    assert res.metrics["outcome"] == "ok" and 0.0 <= res.metrics["test_acc"] <= 1.0
    # every parameter tensor of a block that should move did move; nothing else did
    changed_blocks = {_block_of(k) for k in _changed(before, after)}
    assert changed_blocks | {"head"} == moved
    for k in before:
        if _block_of(k) not in moved:
            assert torch.equal(before[k], after[k]), k
    for n, _ in source.named_parameters():  # in a block that trains, every tensor moved
        if n in before and _block_of(n) in moved:
            assert not torch.equal(before[n], after[n]), n
    if protocol == "freeze:2":
        assert res.metrics["cached_prefix"] == 2


def test_linear_probe_fits_the_pooled_hf_embedding():
    """The probe's head equals an L-BFGS fit on the HF model's own mean-pooled outputs."""
    hf = tiny_bert()
    task = token_task()
    res = transfer(hf_encoder(hf, num_classes=3), task, "linear-probe",
                   {**TRAIN, "l2": 1e-2}, seed=0, progress=False)
    # the final fit reads every labelled example (train + val); fit_probe solves on
    # standardised features x / s (s: the train split's spread) and writes W / s into the head
    x_tr = mean_pooled_reference(hf, task.x_train)
    xs, xvs, s = standardized_features(x_tr, mean_pooled_reference(hf, task.x_val))
    ref = torch.nn.Linear(HIDDEN, 3)
    fit_logistic(torch.cat([xs, xvs]), torch.cat([task.y_train, task.y_val]), ref, 1e-2)
    with torch.no_grad():
        ref.weight.div_(s)
    got = head_linear(res.model)
    # two L-BFGS runs, each to its own tolerance: equal to within 0.5% of the weights' scale
    scale = float(ref.weight.abs().max())
    assert float((got.weight - ref.weight).abs().max()) < 5e-3 * scale
    assert float((got.bias - ref.bias).abs().max()) < 5e-3 * max(1.0, scale)


def test_cached_and_uncached_text_transfer_agree():
    source = hf_encoder(tiny_bert(dropout=0.0), num_classes=3)
    task = token_task()
    a = transfer(source, task, "freeze:2", TRAIN, seed=3, use_cache=True, progress=False)
    b = transfer(source, task, "freeze:2", TRAIN, seed=3, use_cache=False, progress=False)
    assert a.metrics["cached_prefix"] == 2 and b.metrics["cached_prefix"] == 0
    for k, v in a.model.state_dict().items():
        assert torch.allclose(v, b.model.state_dict()[k], atol=1e-4), k


def test_feature_cache_stores_hidden_states_and_chains_bit_identically(tmp_path):
    model = hf_encoder(tiny_bert(), num_classes=3)
    task = token_task()
    direct = compute_split_features(model, task, 2)
    assert isinstance(direct["train"], Hidden)
    assert direct["train"].hidden.dtype == torch.float32
    assert torch.equal(direct["train"].mask, task.x_train.attention_mask)
    cache = FeatureCache(tmp_path)
    cache.get_or_compute(model, task, 1)
    chained = cache.get_or_compute(model, task, 2)
    assert cache.last_start == 1  # extended from the cached depth-1 Hidden states
    hit = FeatureCache(tmp_path).get_or_compute(model, task, 2)
    for split in ("train", "val", "test"):
        for got in (chained[split], hit[split]):
            assert isinstance(got, Hidden)
            assert torch.equal(got.hidden, direct[split].hidden)
            assert torch.equal(got.mask, direct[split].mask)
    # one block from depth 1 = two blocks from the tokens, to the bit
    one = prefix_features(model, prefix_features(model, task.x_train, 1), 2, start=1)
    assert torch.equal(one.hidden, direct["train"].hidden)


def test_reinit_on_a_text_model_is_reproducible_from_the_seed():
    source = hf_encoder(tiny_bert(), num_classes=3)
    task = token_task()
    cfg = {**TRAIN, "epochs": 0}

    def reinit(seed: int) -> dict:
        torch.randn(17)  # whatever ran before must not matter
        return transfer(source, task, "reinit:1", cfg, seed=seed, progress=False) \
            .model.state_dict()

    a, b, c = reinit(0), reinit(0), reinit(1)
    above = [k for k in a if k.startswith(("blocks.1.", "blocks.2."))]
    q = "blocks.1.layer.attention.self.query.weight"
    assert q in above and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a[q], c[q])
    assert not torch.equal(a[q], source.state_dict()[q])
    ln = [k for k in above if "LayerNorm.weight" in k]
    assert ln and all(torch.equal(a[k], torch.ones_like(a[k])) for k in ln)
    # the first block kept its pretrained weights
    for k, v in source.state_dict().items():
        if k.startswith("blocks.0."):
            assert torch.equal(a[k], v)


def test_reset_parameters_seeds_embedding_layernorm_and_attention():
    from transferlab.models import reset_parameters

    def draw(seed: int) -> dict:
        torch.manual_seed(seed + 100)  # the global RNG differs on purpose
        mod = torch.nn.Sequential(torch.nn.Embedding(7, 4, padding_idx=0),
                                  torch.nn.LayerNorm(4), torch.nn.MultiheadAttention(4, 2))
        reset_parameters(mod, torch.Generator().manual_seed(seed))
        return mod.state_dict()

    a, b, c = draw(0), draw(0), draw(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k in ("0.weight", "2.in_proj_weight", "2.out_proj.weight"):
        assert not torch.equal(a[k], c[k]), k
    assert torch.equal(a["0.weight"][0], torch.zeros(4))  # padding row
    assert torch.equal(a["1.weight"], torch.ones(4)) and torch.equal(a["1.bias"], torch.zeros(4))
    assert torch.equal(a["2.in_proj_bias"], torch.zeros(12))


def test_bert_arch_builds_and_rebuilds():
    model = build_model("bert", 4, vocab_size=VOCAB, hidden_size=HIDDEN, max_length=32)
    again = rebuild(model.arch)
    assert model.block_names == ["embeddings", "layer1", "layer2"]
    sa, sb = model.state_dict(), again.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith("head."))
    x = padded_tokens(3, 8, torch.Generator().manual_seed(0))
    assert model.eval()(x).shape == (3, 4)


def test_block_similarity_on_a_text_model_compares_mean_pooled_states():
    from transferlab.similarity.blockwise import block_similarity
    from transferlab.similarity.cka import linear_cka

    model = hf_encoder(tiny_bert(), num_classes=3).eval()
    x = padded_tokens(12, 10, torch.Generator().manual_seed(4))
    sim = block_similarity(model, model, x, "linear_cka", batch_size=5)
    assert sim.shape == (3, 3) and np_allclose(sim.diagonal(), 1.0)
    with torch.no_grad():
        outs = [pool_features(h, "mean") for h in model.block_outputs(x)]
    assert abs(sim[0, 2] - float(linear_cka(outs[0], outs[2]))) < 1e-5


def np_allclose(a, b) -> bool:
    import numpy as np

    return bool(np.allclose(a, b, atol=1e-5))


def test_training_and_evaluation_feed_batches_trimmed_to_their_longest_sequence():
    source = hf_encoder(tiny_bert(), num_classes=3)
    widths: list[tuple[int, int]] = []

    def record(_module, args):
        x = args[0]
        widths.append((x.input_ids.shape[1], int(x.attention_mask.sum(1).max())))

    handle = source.blocks[0].register_forward_pre_hook(record)  # deep-copied with the model
    try:
        transfer(source, token_task(), "finetune", {**TRAIN, "batch_size": 4}, seed=0,
                 progress=False)
    finally:
        handle.remove()
    assert len(widths) > 24  # 2 epochs of 12 training batches, plus evaluation
    assert all(w == longest for w, longest in widths)
    assert min(w for w, _ in widths) < 12  # some batches were shorter than the split


def test_image_augmentation_on_token_inputs_is_a_user_error():
    source = hf_encoder(tiny_bert(), num_classes=3)
    with pytest.raises(UserError, match="augment.*image operations"):
        transfer(source, token_task(), "finetune",
                 {**TRAIN, "hflip": True}, progress=False)


def test_feature_files_written_before_tuple_support_still_load(tmp_path):
    from safetensors.torch import save_file

    feats = {s: torch.randn(3, 4) for s in ("train", "val", "test")}
    path = tmp_path / "old.safetensors"
    save_file(feats, str(path), metadata={"nhwc": ""})  # the old layout: no "kinds" entry
    got = FeatureCache(tmp_path)._load(path, "cpu")
    assert got is not None and all(torch.equal(got[s], feats[s]) for s in feats)


def test_advise_evidence_and_leep_on_a_text_encoder_with_a_head():
    """A text encoder's last block gives a Hidden (tokens + mask): LEEP of its source head
    pools it first (this crashed with AttributeError: 'Hidden' object has no attribute
    'float' on MiniLM, whose head is a Linear)."""
    from transferlab.advise.evidence import measure
    from transferlab.transferability.score import source_probabilities

    model = hf_encoder(tiny_bert(), num_classes=5)
    task = token_task(n_train=48, n_val=24)
    ev = measure(model, task, per_class=40)
    assert ev.leep is not None and ev.top_depth == model.num_blocks
    probs = source_probabilities(model, task)
    assert probs.shape == (48, 5) and torch.allclose(probs.sum(1), torch.ones(48,
                                                                              dtype=probs.dtype))
