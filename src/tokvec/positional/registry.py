"""Positional schemes by name. Adding a scheme = one new file + one line in ``SCHEMES``."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import TokvecValueError
from .base import PositionalEncoding

# name -> "module:Class" inside tokvec.positional (imported on first use)
SCHEMES: dict[str, str] = {
    "sinusoidal": "sinusoidal:SinusoidalPositionalEncoding",
    "learned": "learned:LearnedPositionalEncoding",
    "none": "none:NoPositionalEncoding",
    "rope": "rope:RotaryPositionalEncoding",
    "alibi": "alibi:ALiBiPositionalEncoding",
    "relative": "relative:ShawRelativePositionalEncoding",
    "t5": "t5:T5RelativePositionalEncoding",
    "xl": "xl:TransformerXLPositionalEncoding",
    "cape": "cape:CAPEPositionalEncoding",
}


def available() -> list[str]:
    """Names of every registered scheme."""
    return list(SCHEMES)


def get_class(name: str) -> type[PositionalEncoding]:
    if name not in SCHEMES:
        raise TokvecValueError(f"unknown positional scheme {name!r}; known schemes: {', '.join(SCHEMES)}")
    module, cls = SCHEMES[name].split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def build(name: str, **config: Any) -> PositionalEncoding:
    """Build a scheme by name: ``build("sinusoidal", d_model=64, max_len=5000)``.

    ``config`` holds the model-wide context (d_model, n_heads, head_dim, max_len), of which each
    scheme takes what it needs, plus scheme options (``layout="halves"``, ``base=...``).
    """
    if isinstance(name, PositionalEncoding):
        return name
    if not isinstance(name, str):
        raise TokvecValueError(f"positional must be a scheme name or a PositionalEncoding, got {type(name).__name__}")
    cls = get_class(name)
    _check_table_memory(name, config)
    return cls.from_config(**config)


def _check_table_memory(name: str, config: dict) -> None:
    """Refuse a ``max_len`` whose precomputed (max_len, d_model) table could not fit in memory (the
    tables of sinusoidal, learned and rope grow with it) before any scheme allocates it."""
    from .._checks import check_memory

    max_len, d_model = config.get("max_len"), config.get("d_model")
    if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (max_len, d_model)):
        check_memory(
            f"the {name} positional table for max_len {max_len} x d_model {d_model}",
            2 * 4 * max_len * d_model,
            fix="use a smaller max_len (the context length) or d_model",
        )
