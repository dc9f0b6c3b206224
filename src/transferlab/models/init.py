"""Seeded initial values that do not depend on the device: the one place that draws them.

A ``torch.Generator`` belongs to one device: drawing on a CUDA parameter with a CPU generator
raises ("Expected a 'cuda' device type for generator but found 'cpu'"), and a CUDA generator
would give other numbers than the CPU one for the same seed. So every re-initialisation in
transferlab draws here: into a fresh CPU tensor of the parameter's shape, from a CPU
generator (or the global CPU RNG when none is given), and then copies the values onto the
parameter's device and dtype. One seed thus gives the same weights on CPU and CUDA, whatever
the global RNG state (with a generator) and whatever ran on the GPU before.

``tests/test_init_helper.py`` scans ``src/`` and fails on any draw with ``generator=`` on a
tensor that is not a fresh CPU one outside this module, so the next device bug of this kind
is caught on a CPU-only machine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["seeded_", "kaiming_uniform_", "uniform_", "normal_", "xavier_uniform_",
           "xavier_normal_", "check_cpu_generator"]

# Drawn in this precision, then cast by the copy: half and bfloat16 draws on the CPU are not
# supported by every kernel on torch 2.4, and a float32 draw rounded once gives the same
# values on every device.
_DRAW_DTYPES = (torch.float32, torch.float64)


def check_cpu_generator(generator: torch.Generator | None) -> None:
    """Raise ValueError if ``generator`` is not a CPU generator (None is allowed)."""
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator on device {generator.device} given: transferlab draws "
                         "initial values on a CPU generator (torch.Generator()) and copies "
                         "them to the parameter's device, so a seed means the same weights "
                         "on every device")


@torch.no_grad()
def seeded_(tensor: torch.Tensor, init: Callable[..., torch.Tensor],
            generator: torch.Generator | None = None, *args, **kwargs) -> torch.Tensor:
    """Fill ``tensor`` (any shape, device, dtype) in place with ``init(cpu, *args,
    generator=generator, **kwargs)`` drawn on a fresh CPU tensor of the same shape.

    ``init`` is an ``nn.init`` function (its fans are read from the shape, so they are the
    parameter's). Returns ``tensor``.
    """
    check_cpu_generator(generator)
    dtype = tensor.dtype if tensor.dtype in _DRAW_DTYPES else torch.float32
    cpu = torch.empty(tensor.shape, dtype=dtype)  # fresh, on the CPU: the generator's device
    init(cpu, *args, generator=generator, **kwargs)
    tensor.copy_(cpu)
    return tensor


def kaiming_uniform_(tensor: torch.Tensor, a: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``nn.init.kaiming_uniform_`` (fan_in, leaky_relu) drawn on the CPU; see ``seeded_``."""
    return seeded_(tensor, nn.init.kaiming_uniform_, generator, a=a)


def uniform_(tensor: torch.Tensor, low: float, high: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """U(low, high) drawn on the CPU; see ``seeded_``."""
    return seeded_(tensor, nn.init.uniform_, generator, low, high)


def normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """N(mean, std^2) drawn on the CPU; see ``seeded_``."""
    return seeded_(tensor, nn.init.normal_, generator, mean, std)


def xavier_uniform_(tensor: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """``nn.init.xavier_uniform_`` drawn on the CPU; see ``seeded_``."""
    return seeded_(tensor, nn.init.xavier_uniform_, generator)


def xavier_normal_(tensor: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``nn.init.xavier_normal_`` drawn on the CPU; see ``seeded_``."""
    return seeded_(tensor, nn.init.xavier_normal_, generator)
