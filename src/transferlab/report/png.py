"""Figures as PNG bytes, written atomically (the reports embed the same bytes)."""

from __future__ import annotations

import io
import os

from matplotlib.figure import Figure

from transferlab._atomic import atomic_path


def png_bytes(fig: Figure) -> bytes:
    """``fig`` rendered as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_png(fig: Figure, path: str | os.PathLike) -> bytes:
    """Write ``fig`` as PNG atomically; returns the bytes (for embedding in the report)."""
    data = png_bytes(fig)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data
