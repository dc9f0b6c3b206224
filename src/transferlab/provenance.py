"""Provenance recorded with every result: versions, git commit, host, time."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the transferlab source tree, with ``+dirty`` if the package's own files
    (``src/transferlab``) have local changes; a benchmark writing its result file, or an
    edited README, does not make the code that produced a number dirty."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "."], cwd=here, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    """Versions of the libraries that change numbers."""
    import numpy
    import torch

    from transferlab import __version__

    out = {"transferlab": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version()}
    if torch.cuda.is_available():  # the GPU stack and its float32 defaults change numbers too
        out.update({"cuda": str(torch.version.cuda), "cudnn": str(torch.backends.cudnn.version()),
                    "float32_matmul_precision": torch.get_float32_matmul_precision(),
                    "cudnn_allow_tf32": str(torch.backends.cudnn.allow_tf32)})
    return out


def provenance() -> dict:
    """Everything needed to say where a result came from."""
    import torch

    from transferlab._allocator import allocator_state

    return {
        "versions": versions(),
        # Freed memory kept or not changes CPU timings by up to a third (see _allocator).
        "allocator": allocator_state(),
        "commit": git_commit(),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
