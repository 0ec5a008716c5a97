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
    return get_class(name).from_config(**config)
