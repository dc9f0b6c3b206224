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
from transferlab.inputs import Batched
from transferlab.models import init
from transferlab.models.pooling import PooledHead


class BlockModel(nn.Module):
    """Blocks applied in order, then the head.

    Args:
        blocks: the transferable blocks, applied in order.
        head: the final classifier; a plain head reads the last block's output flattened
            to (N, features), a ``PooledHead`` pools it (mean over tokens, CLS, flatten).
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

    def features(self, x: Batched, depth: int) -> Batched:
        """Output of the first ``depth`` blocks; ``depth=0`` returns ``x``.

        ``x``: a tensor (images (N, C, H, W), vectors (N, D)) or a ``TensorTuple``
        (``TokenInputs`` into a text model); blocks pass whatever they return (``Hidden``
        between transformer layers) to the next one unchanged.
        """
        for block in self.blocks[:depth]:
            x = block(x)
        return x

    def forward_from(self, h: Batched, start: int) -> torch.Tensor:
        """Logits (N, num_classes) from ``h``, the output of the first ``start`` blocks."""
        for block in self.blocks[start:]:
            h = block(h)
        # A plain head reads (N, features): flatten tensors here (the CNN fast path, one
        # type check). A PooledHead pools itself (mean/CLS over Hidden, or flatten).
        if isinstance(h, torch.Tensor) and h.dim() > 2 and not isinstance(self.head, PooledHead):
            h = h.flatten(1)
        return self.head(h)

    def forward(self, x: Batched) -> torch.Tensor:  # (N, C, H, W) or TokenInputs -> (N, k)
        return self.forward_from(x, 0)

    def block_outputs(self, x: Batched) -> list[Batched]:
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
    """Re-initialise every submodule that knows how, drawing from ``generator``.

    Conv and Linear: PyTorch's default (Kaiming-uniform weights, uniform bias); BatchNorm,
    LayerNorm, GroupNorm: ones and zeros (running statistics reset); Embedding: N(0, 1) as
    ``nn.Embedding`` does, the padding row zero; MultiheadAttention: Xavier-uniform input
    projection, zero biases. Every draw is made on the CPU (``generator``: a CPU
    generator) and copied to the parameter's device (``models/init.py``), so one seed gives
    the same weights on CPU and CUDA. With a ``generator`` every draw is seeded independently
    of the global RNG, so "re-initialise blocks n..L" gives the same weights for the same seed
    whatever ran before (CNNs and text encoders alike). Other leaf modules with parameters
    fall back to their own ``reset_parameters`` (global RNG, not seeded).
    """
    for m in module.modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            init.kaiming_uniform_(m.weight, a=5 ** 0.5, generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / fan_in ** 0.5 if fan_in > 0 else 0
                init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            if m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            init.normal_(m.weight, 0.0, 1.0, generator=generator)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.MultiheadAttention):
            # out_proj is an nn.Linear: re-initialised by the branch above as a submodule.
            for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                if getattr(m, name, None) is not None:
                    init.xavier_uniform_(getattr(m, name), generator=generator)
            for name in ("bias_k", "bias_v"):
                if getattr(m, name, None) is not None:
                    init.xavier_normal_(getattr(m, name), generator=generator)
            if m.in_proj_bias is not None:
                nn.init.zeros_(m.in_proj_bias)
        elif hasattr(m, "reset_parameters") and not list(m.children()) and \
                any(True for _ in m.parameters(recurse=False)):
            m.reset_parameters()  # an unlisted leaf module: not seeded by `generator`
