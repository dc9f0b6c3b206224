"""``BlockModel``: a network seen as an ordered list of transferable blocks plus a head.

Every transfer protocol speaks in blocks: "copy the first n blocks", "freeze them",
"re-initialise the rest". Keeping the model as an explicit sequence makes the frozen
prefix computable once (``features``) and the rest trainable from cached activations
(``forward_from``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transferlab.errors import UserError


class BlockModel(nn.Module):
    """Blocks applied in order, then the head.

    Args:
        blocks: the transferable blocks, applied in order.
        head: the final classifier; its input is flattened to (N, features) if needed.
        block_names: a name per block (defaults to ``block1..blockL``).
        arch: a JSON-able dict that rebuilds this architecture with ``build_model(**arch)``
            (``None`` for wrapped user modules, which cannot be rebuilt from a file).
    """

    def __init__(self, blocks: Sequence[nn.Module], head: nn.Module,
                 block_names: Sequence[str] | None = None, arch: dict | None = None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        names = list(block_names) if block_names is not None else [
            f"block{i + 1}" for i in range(len(self.blocks))]
        if len(names) != len(self.blocks):
            raise ValueError(f"got {len(names)} block names for {len(self.blocks)} blocks")
        self.block_names = names
        self.arch = arch

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def features(self, x: torch.Tensor, depth: int) -> torch.Tensor:
        """Output of the first ``depth`` blocks; ``depth=0`` returns ``x``."""
        for block in self.blocks[:depth]:
            x = block(x)
        return x

    def forward_from(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from ``h``, the output of the first ``start`` blocks."""
        for block in self.blocks[start:]:
            h = block(h)
        return self.head(h.flatten(1) if h.dim() > 2 else h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, num_classes)
        return self.forward_from(x, 0)

    def block_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, in order (for similarity analyses)."""
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs

    @property
    def num_classes(self) -> int:
        last = [m for m in self.head.modules() if isinstance(m, nn.Linear)]
        return last[-1].out_features if last else -1


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The transferable blocks of ``model``, as ``(name, module)`` pairs, in order.

    Built-in models and wrapped modules are ``BlockModel``s; for any other module, wrap it
    first with ``transferlab.models.wrap(module, blocks=[...], head=...)``.
    """
    if not isinstance(model, BlockModel):
        raise UserError(
            f"model={type(model).__name__} has no declared blocks: allowed is a BlockModel; "
            "wrap it with transferlab.models.wrap(model, blocks=['layer1', ...], head='fc')")
    return list(zip(model.block_names, model.blocks))


def block_of_parameter(model: BlockModel) -> dict[str, str]:
    """Map every parameter and buffer name of ``model`` to its block name (or ``"head"``)."""
    out: dict[str, str] = {}
    for i, name in enumerate(model.block_names):
        for pname, _ in model.blocks[i].named_parameters():
            out[f"blocks.{i}.{pname}"] = name
        for bname, _ in model.blocks[i].named_buffers():
            out[f"blocks.{i}.{bname}"] = name
    for pname, _ in model.head.named_parameters():
        out[f"head.{pname}"] = "head"
    for bname, _ in model.head.named_buffers():
        out[f"head.{bname}"] = "head"
    return out


def reset_parameters(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-initialise every submodule that knows how (conv, linear, BatchNorm).

    With a ``generator``, the draw is seeded independently of the global RNG, so
    "re-initialise blocks n..L" gives the same weights for the same seed whatever ran before.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5, generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / fan_in ** 0.5 if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            if m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif hasattr(m, "reset_parameters") and not list(m.children()) and \
                any(True for _ in m.parameters(recurse=False)):
            m.reset_parameters()  # e.g. LayerNorm, Embedding: not seeded by `generator`
