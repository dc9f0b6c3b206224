"""Does a model run on a task's inputs? Checked on one example before any training.

The most common slip is a target task at another image size or channel count than the
source was trained on; without this check it surfaces as a matrix-shape traceback deep in
the first training step. Here it is one line naming both shapes and the task key that fixes
it (``size=8``, ``channels=1``).
"""

from __future__ import annotations

import torch

from transferlab.errors import UserError
from transferlab.inputs import TensorTuple, index
from transferlab.models.base import BlockModel


def expected_input(model: BlockModel) -> tuple[int, int | tuple[int, int]] | None:
    """(in_channels, image_size) a built-in image architecture was built for, else None."""
    arch = model.arch or {}
    if "in_channels" in arch and "image_size" in arch and arch.get("arch") != "bert":
        return int(arch["in_channels"]), arch["image_size"]
    return None


def _fix(model: BlockModel, shape: tuple[int, ...]) -> str:
    want = expected_input(model)
    if want is None or len(shape) != 3:
        return "pass inputs shaped like the model's training task"
    c, size = want
    keys = []
    if shape[0] != c:
        keys.append(f"channels={c}")
    side = size if isinstance(size, int) else None
    if (shape[1], shape[2]) != ((size, size) if side else tuple(size)):
        keys.append(f"size={side}" if side else f"a size of {size}")
    trained = f"(C, H, W) = ({c}, {size}, {size})" if side else f"C={c}, size {size}"
    return (f"the model was built for {trained}; add {' and '.join(keys) or 'matching keys'} "
            "to the task")


def _check_same_device(model: BlockModel, one, what: str) -> None:
    """A model and inputs on different devices: one line naming both (not a shape error,
    which is what the forward's RuntimeError would otherwise be reported as)."""
    devices = {p.device for p in model.parameters()}
    if devices and one.device not in devices:
        raise UserError(f"{what} model is on {', '.join(sorted(map(str, devices)))} but the "
                        f"inputs are on {one.device}: allowed is one device for both; move "
                        f"them with .to(device)")


TEXT_SOURCES = ("banking77", "csv")  # registered text sources (tokenizer key, default minilm)


def describe(model: BlockModel) -> str:
    """What a model takes, in words: 'an image model (mlp, C=1, size 8)', 'a text model
    (bert, vocabulary 259)'."""
    arch = model.arch or {}
    name = arch.get("arch", "wrapped")
    if _vocab(model) is not None:
        return f"a text model ({name}, vocabulary {_vocab(model)})"
    want = expected_input(model)
    if want is not None:
        c, size = want
        return f"an image model ({name}, C={c}, size {size})"
    return f"a {name} model"


def _vocab(model: BlockModel) -> int | None:
    """The token vocabulary of a text encoder (its first embedding), else None."""
    if not len(model.blocks):
        return None
    emb = next((m for m in model.blocks[0].modules() if isinstance(m, torch.nn.Embedding)),
               None)
    return int(emb.num_embeddings) if emb is not None else None


def _check_modality(model: BlockModel, x, what: str, task: str) -> None:
    """Tokens to an image model, images to a text model, or token ids of another tokenizer
    than the model's: one line naming both sides."""
    import re

    from transferlab.inputs import TokenInputs

    vocab = _vocab(model)
    on = f"task {task!r}" if task else "these inputs"
    if isinstance(x, TokenInputs) and vocab is None:
        raise UserError(f"{what} is {describe(model)} but {on} holds token sequences: allowed "
                        "is a text model (arch bert, minilm or hf_encoder) for a text task; "
                        "pass a text checkpoint or an image task")
    if not isinstance(x, TokenInputs) and vocab is not None:
        held = (f"images of shape {tuple(x.shape[1:])}" if x.ndim == 4 else
                f"vectors of shape {tuple(x.shape[1:])}")
        raise UserError(f"{what} is {describe(model)} but {on} holds {held}: allowed is a "
                        "text task (banking77, csv:path=FILE); pass a text task or an image "
                        "checkpoint")
    if isinstance(x, TokenInputs):
        from transferlab.data.text import TOKENIZER_VOCAB

        # the tokenizer of a text source's task: its key, or the sources' default (minilm);
        # token arrays from memory (from_tokens) name none, so only their range is checked
        found = re.search(r"(?:^|:)tokenizer=(\w+)", task or "")
        source = (task or "").split(":")[0]
        tok = found.group(1) if found else ("minilm" if source in TEXT_SOURCES else None)
        top = int(x.input_ids.max()) if x.input_ids.numel() else 0
        need = TOKENIZER_VOCAB.get(tok) if tok else None
        if top >= vocab or (need is not None and need != vocab):
            fit = [k for k, v in TOKENIZER_VOCAB.items() if v == vocab]
            raise UserError(f"{what} is {describe(model)} but {on} is tokenized by "
                            f"tokenizer={tok!r} (vocabulary {need or f'> {top}'}): allowed is "
                            "the tokenizer the model was trained with; "
                            + (f"add tokenizer={fit[0]} to the task" if fit else
                               "tokenize the task with the model's own vocabulary"))


def check_runs_on(model: BlockModel, x, what: str = "source", task: str = "") -> None:
    """Run ``model`` on the first example of ``x`` (no grad, eval mode, restored after);
    a modality, tokenizer, shape or dtype mismatch becomes a ``UserError`` naming both
    sides and the fix."""
    if (len(x) if isinstance(x, TensorTuple) else int(x.shape[0])) == 0:
        return
    _check_modality(model, x, what, task)
    from transferlab.data.batching import trim_padding

    one = trim_padding(index(x, slice(0, 1)))  # token batches: no all-padding columns
    _check_same_device(model, one, what)
    modes = [m.training for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(one)
    except (RuntimeError, ValueError, IndexError, TypeError, AttributeError) as exc:
        shape = tuple(one.shape[1:])
        first = str(exc).strip().splitlines()[0][:160]
        on = f"task {task!r}" if task else "these inputs"
        raise UserError(f"{what} model cannot run on {on}: inputs of shape {shape} ({first}); "
                        f"{_fix(model, shape)}") from exc
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode
