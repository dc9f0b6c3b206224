"""Issue "one core for every study", end to end across the parts: a text encoder on a token
task made with ``from_tokens`` and an mlp on a float-vector task made with ``from_arrays``,
each through every protocol that applies, with the honesty test (exactly the intended
parameters changed, everything else bit-identical)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab import transfer
from transferlab.cli import main
from transferlab.data import from_arrays, from_tokens, make_task
from transferlab.errors import UserError
from transferlab.models import build_model, hf_encoder
from transferlab.protocols import get_protocol, protocol_names

transformers = pytest.importorskip("transformers")

TRAIN = {"epochs": 2, "batch_size": 16, "lr": 0.05, "device": "cpu"}


def _tiny_bert():
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=16, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    return hf_encoder(transformers.BertModel(cfg, add_pooling_layer=False).eval(), 3)


@pytest.fixture(scope="module")
def token_task():
    rng = np.random.default_rng(0)
    n, length = 90, 10
    ids = rng.integers(1, 60, (n, length))
    lens = rng.integers(3, length + 1, n)
    mask = (np.arange(length)[None, :] < lens[:, None]).astype(np.int64)
    y = ids[:, 0] % 3  # learnable from the first token
    ds = from_tokens(ids * mask, mask, y, name="toy-text")
    return make_task("toy-text", dataset=ds)


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


# protocol -> which parameter names may change (predicate on the name); the head always may
TEXT_CASES = {
    "linear-probe": lambda k: False,
    "head-only": lambda k: False,
    "freeze:2": lambda k: not k.startswith(("blocks.0.", "blocks.1.")),
    "finetune": lambda k: True,
    "lp-ft": lambda k: True,
    "norm-only": lambda k: "LayerNorm" in k or "layer_norm" in k.lower(),
}


@pytest.mark.parametrize("protocol", list(TEXT_CASES))
def test_text_encoder_protocols_move_exactly_the_intended_parameters(token_task, protocol):
    source = _tiny_bert()
    before = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("head.")}
    res = transfer(source, token_task, protocol, TRAIN, seed=0, progress=False)
    assert res.metrics["outcome"] == "ok"
    after = {k: v for k, v in res.model.state_dict().items() if not k.startswith("head.")}
    changed = _changed(before, after)
    allowed = TEXT_CASES[protocol]
    assert all(allowed(k) for k in changed), sorted(k for k in changed if not allowed(k))
    may = {k for k in before if allowed(k) and before[k].is_floating_point()}
    if protocol in ("norm-only", "freeze:2", "finetune", "lp-ft"):
        # every trainable kind moved somewhere (embeddings' unused rows may stay put)
        assert changed and any("LayerNorm" in k for k in changed)
    if protocol in ("linear-probe", "head-only"):
        assert changed == set()
    assert changed <= may


def test_bn_only_on_the_text_encoder_names_norm_only(token_task):
    with pytest.raises(UserError, match="norm-only"):
        transfer(_tiny_bert(), token_task, "bn-only", TRAIN, seed=0, progress=False)


@pytest.fixture(scope="module")
def vector_data():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 12)) * 2
    y = rng.integers(0, 3, 300)
    x = centres[y] + rng.standard_normal((300, 12))  # float64, not in [0, 1]
    return x, y


@pytest.fixture(scope="module")
def vector_source(vector_data):
    x, y = vector_data
    ds = from_arrays(x, y, name="vec")  # no test arrays: 20% carved as the test split
    task = make_task("vec", dataset=ds)
    from transferlab import pretrain
    return task, ds, pretrain(task, "mlp", {**TRAIN, "epochs": 5}, seed=0, progress=False,
                          width=16, depth=3).model


def _every_protocol() -> list[str]:
    names = []
    for name in protocol_names():
        names.append(name.replace(":n", ":1"))
    return names


@pytest.mark.parametrize("protocol", _every_protocol())
def test_mlp_on_vectors_trains_with_every_protocol(vector_data, vector_source, protocol):
    x, y = vector_data
    task, ds, source = vector_source
    rows = {tuple(r) for r in x.astype(np.float32)}
    assert torch.equal(task.x_train, torch.from_numpy(ds.x_train[task.train_index]))
    assert all(tuple(r) in rows for r in task.x_train.numpy())  # given rows, float32 cast
    family = get_protocol(protocol).family
    if family in ("bn-only", "norm-only", "bn-adapt") or "bn-only" in family \
            or "norm-only" in family:
        with pytest.raises(UserError, match="no normalisation layer|matches no parameter|"
                                            "BatchNorm"):
            transfer(source, task, protocol, TRAIN, seed=0, progress=False)
        return
    res = transfer(source, task, protocol, TRAIN, seed=0, progress=False)
    assert res.metrics["outcome"] == "ok", res.metrics["reason"]
    assert res.metrics["test_acc"] > 0.6, (protocol, res.metrics["test_acc"])  # chance 1/3


def test_bn_only_cli_on_a_model_without_norms_exits_2(tmp_path, capsys):
    src = tmp_path / "src"
    assert main(["pretrain", "--task", "digits:classes=0-4:size=8", "--arch", "mlp",
                 "--arch-kwargs", '{"width": 8}', "--epochs", "1", "--quiet",
                 "--out", str(src)]) == 0
    assert main(["transfer", "--source", str(src), "--task", "digits:classes=5-9:size=8",
                 "--protocol", "bn-only", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train_kinds='bn'" in err[0]


def test_models_on_vectors_get_their_width_from_the_task(vector_source):
    task, _, _ = vector_source
    model = build_model("mlp", 3, **task.model_kwargs, width=8)
    assert model(task.x_test[:4]).shape == (4, 3)
