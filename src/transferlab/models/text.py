"""Hugging Face BERT-family encoders as BlockModels (optional extra ``text``).

``hf_encoder(model, num_classes)`` turns a ``BertModel``-like encoder (``.embeddings`` and
``.encoder.layer[i]``: BERT, RoBERTa, ELECTRA, ...) into blocks a transfer protocol can
freeze, copy or re-initialise:

* block ``embeddings``: ``TokenInputs`` (ids, mask) -> ``Hidden`` (states, the same mask);
* blocks ``layer1`` .. ``layerL``: ``Hidden`` -> ``Hidden``, one transformer layer each;
* the head: a ``PooledHead`` (mean over unmasked tokens by default, or CLS) + a Linear.

The blocks share the HF model's parameters; ``hf_encoder`` checks on a small padded batch
that the blocks reproduce the model's own ``last_hidden_state`` (eval mode), because
feature caching and every protocol rely on that. The HF pooler (if any) is not used.
Checked against transformers 4.57.6 (layers return tuples) and 5.24.0 (tensors), eager and
SDPA attention.
"""

from __future__ import annotations

import torch
from torch import nn

from transferlab.errors import UserError, bad_value
from transferlab.inputs import Hidden, TokenInputs
from transferlab.models.base import BlockModel
from transferlab.models.pooling import POOLS, PooledHead

INSTALL_HINT = "pip install 'transferlab[text]'"

__all__ = ["EmbeddingsBlock", "LayerBlock", "bert", "extended_attention_mask", "hf_encoder"]


def extended_attention_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, L) 1/0 mask -> (N, 1, 1, L) additive mask: 0 for tokens, dtype's min for padding.

    The form every transformers version's eager and SDPA attention add to its scores.
    """
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class EmbeddingsBlock(nn.Module):
    """HF embeddings as a block: ``TokenInputs`` -> ``Hidden`` (N, L, H), mask passed on."""

    def __init__(self, embeddings: nn.Module) -> None:
        super().__init__()
        self.embeddings = embeddings

    def forward(self, x: TokenInputs) -> Hidden:
        if not isinstance(x, TokenInputs):
            raise UserError(f"a text encoder's first block got {type(x).__name__}: allowed is "
                            "TokenInputs (input_ids, attention_mask); use a token task")
        # Only ids by keyword: token types default to 0 and positions to 0..L-1 in every
        # transformers version (their other arguments were renamed between versions).
        return Hidden(self.embeddings(input_ids=x.input_ids), x.attention_mask)


class LayerBlock(nn.Module):
    """One HF transformer layer as a block: ``Hidden`` -> ``Hidden`` (mask unchanged)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, h: Hidden) -> Hidden:
        if not isinstance(h, Hidden):
            raise UserError(f"a transformer layer block got {type(h).__name__}: allowed is "
                            "Hidden (states, mask), the output of the block before it")
        out = self.layer(h.hidden, attention_mask=extended_attention_mask(h.mask, h.hidden.dtype))
        if isinstance(out, (tuple, list)):  # transformers < 5 returns (states, ...)
            out = out[0]
        return Hidden(out, h.mask)


def _encoder_parts(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    base = model
    if not hasattr(base, "embeddings") and hasattr(base, "base_model"):
        base = base.base_model  # e.g. BertForSequenceClassification -> its BertModel
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not hasattr(base, "embeddings") or layers is None:
        raise UserError(f"model={type(model).__name__} is not a BERT-like encoder: allowed are "
                        "models with .embeddings and .encoder.layer (BertModel, RobertaModel, "
                        "...); wrap other modules with transferlab.models.wrap")
    return base, list(layers)


def _check_reproduces(base: nn.Module, model: BlockModel, atol: float) -> None:
    """Blocks (eval mode) must give the HF model's last_hidden_state on a padded batch."""
    cfg = base.config
    gen = torch.Generator().manual_seed(0)
    length = min(8, int(getattr(cfg, "max_position_embeddings", 8)) - 2)
    device = next(base.parameters()).device
    ids = torch.randint(1, int(cfg.vocab_size), (2, length), generator=gen).to(device)
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0  # one padded row
    was = base.training
    base.eval()
    try:
        with torch.no_grad():
            ref = base(input_ids=ids, attention_mask=mask).last_hidden_state
            got = model.features(TokenInputs(ids, mask), model.num_blocks).hidden
    finally:
        base.train(was)
    keep = mask.bool()
    if ref.shape != got.shape or not torch.allclose(ref[keep], got[keep], atol=atol):
        raise UserError(f"model={type(base).__name__}: its embeddings and layers called as "
                        "blocks do not reproduce its own forward; allowed are BERT-like encoders "
                        "whose layers take (hidden_states, attention_mask=4-D additive mask); "
                        "wrap this model by hand with transferlab.models.wrap")


def hf_encoder(model: nn.Module, num_classes: int, pool: str = "mean", check: bool = True,
               atol: float = 1e-5) -> BlockModel:
    """A BERT-like ``transformers`` encoder as a BlockModel sharing its parameters.

    Args:
        model: e.g. ``BertModel(BertConfig(...))`` or ``AutoModel.from_pretrained(...)``.
        num_classes: outputs of the new linear head (on ``hidden_size`` features).
        pool: ``mean`` (over unmasked tokens) or ``cls`` (first token).
        check: verify on a padded batch that the blocks reproduce the model (to ``atol``).
    Input ``TokenInputs`` (N, L) -> logits (N, num_classes). Blocks: ``embeddings``,
    ``layer1`` .. ``layerL``.
    """
    if pool not in POOLS or pool == "flatten":
        raise bad_value("pool", pool, "mean or cls", "pick how tokens are pooled for the head")
    base, layers = _encoder_parts(model)
    hidden = int(base.config.hidden_size)
    p = next(base.parameters())
    head = PooledHead(pool, nn.Linear(hidden, num_classes, device=p.device, dtype=p.dtype))
    blocks = [EmbeddingsBlock(base.embeddings)] + [LayerBlock(layer) for layer in layers]
    names = ["embeddings"] + [f"layer{i + 1}" for i in range(len(layers))]
    out = BlockModel(blocks, head, names, arch=None)
    if check:
        _check_reproduces(base, out, atol)
    return out


def bert(num_classes: int, in_channels: int = 1, image_size: int = 16, vocab_size: int = 1000,
         hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2,
         intermediate_size: int = 64, max_length: int = 64, pool: str = "mean",
         seed: int = 0) -> BlockModel:
    """A randomly initialised BERT encoder (built from a ``BertConfig``, no download).

    ``in_channels`` and ``image_size`` are accepted for ``build_model``'s signature and
    ignored. The HF initialisation draws from ``seed``, so ``rebuild(model.arch)`` gives the
    same architecture (weights then load from a checkpoint). Blocks as in ``hf_encoder``.
    """
    del in_channels, image_size
    try:
        from transformers import BertConfig, BertModel
    except ImportError as exc:
        raise UserError(f"arch='bert' needs transformers: {INSTALL_HINT}") from exc
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                     num_hidden_layers=num_layers, num_attention_heads=num_heads,
                     intermediate_size=intermediate_size, max_position_embeddings=max_length,
                     attn_implementation="eager")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = BertModel(cfg, add_pooling_layer=False)
    model = hf_encoder(net, num_classes, pool=pool)
    model.arch = {"arch": "bert", "num_classes": num_classes, "vocab_size": vocab_size,
                  "hidden_size": hidden_size, "num_layers": num_layers, "num_heads": num_heads,
                  "intermediate_size": intermediate_size, "max_length": max_length,
                  "pool": pool, "seed": seed}
    return model
