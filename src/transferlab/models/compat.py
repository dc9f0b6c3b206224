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


def check_runs_on(model: BlockModel, x, what: str = "source", task: str = "") -> None:
    """Run ``model`` on the first example of ``x`` (no grad, eval mode, restored after);
    a shape or dtype mismatch becomes a ``UserError`` naming both shapes and the fix."""
    if (len(x) if isinstance(x, TensorTuple) else int(x.shape[0])) == 0:
        return
    from transferlab.data.batching import trim_padding

    one = trim_padding(index(x, slice(0, 1)))  # token batches: no all-padding columns
    _check_same_device(model, one, what)
    modes = [m.training for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(one)
    except (RuntimeError, ValueError, IndexError) as exc:
        shape = tuple(one.shape[1:])
        first = str(exc).strip().splitlines()[0][:160]
        on = f"task {task!r}" if task else "these inputs"
        raise UserError(f"{what} model cannot run on {on}: inputs of shape {shape} ({first}); "
                        f"{_fix(model, shape)}") from exc
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode
