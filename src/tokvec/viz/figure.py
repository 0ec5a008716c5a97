"""Figures without a display: built as plain ``matplotlib.figure.Figure`` (no pyplot, no global
state), drawn by the Agg backend, saved atomically as PNG or SVG.

Every tokvec figure carries ``fig.tokvec_info``, a dict with at least ``plot`` (which plot),
``font`` / ``font_path`` (the CJK font used, or None) and ``font_note`` (one line for a user).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._io import atomic_open
from ..errors import TokvecValueError
from .fonts import cjk_text, has_cjk

FORMATS = {".png": "png", ".svg": "svg"}
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "→", "\r": "⏎"}


@contextmanager
def new_figure(plot: str, *, figsize: tuple[float, float], texts: Iterable[str] = (), **info: Any) -> Iterator:
    """``with new_figure(...) as fig:`` a Figure whose text (made inside the block) uses the CJK font
    when one exists, with ``tokvec_info`` filled in.

    ``texts``: the labels the figure will show; when they hold CJK characters and no CJK font was
    found, the figure says so in a footnote (and ``tokvec_info["font_note"]``) instead of silently
    drawing boxes.
    """
    from matplotlib.figure import Figure

    with cjk_text() as font:
        fig = Figure(figsize=figsize, layout="constrained")
        needs_cjk = any(has_cjk(t) for t in texts)
        fig.tokvec_info = {
            "plot": plot,
            "font": font.name,
            "font_path": font.path,
            "needs_cjk": needs_cjk,
            "font_note": font.describe(),
            **info,
        }
        if needs_cjk and not font.found:
            fig.text(0.01, 0.005, "⚠ " + font.describe(), fontsize=7, color="#b00020", ha="left", va="bottom")
        yield fig


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (PNG, or SVG when the name ends in .svg), atomically. Returns the path."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TokvecValueError(
            f"cannot save a figure as {path.suffix or 'a file without extension'!r} ({path}); name it .png or .svg"
        )
    metadata = {"Creator": "tokvec"} if fmt == "svg" else {"Software": "tokvec"}
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, metadata=metadata)
    return path


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for inlining in HTML)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def display_token(piece: str, limit: int = 12) -> str:
    """A token as a readable label: spaces/newlines made visible, control bytes escaped, long ones cut."""
    out = []
    for ch in piece:
        if ch in _VISIBLE:
            out.append(_VISIBLE[ch])
        elif ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    label = "".join(out)
    return label if len(label) <= limit else label[: limit - 1] + "…"
