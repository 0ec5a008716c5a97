"""Positional encodings, chosen by name: ``tokvec.positional.build("sinusoidal", d_model=64)``."""

from .base import PositionalEncoding
from .learned import LearnedPositionalEncoding
from .none import NoPositionalEncoding
from .registry import SCHEMES, available, build, get_class
from .sinusoidal import SinusoidalPositionalEncoding, sinusoidal_table

__all__ = [
    "PositionalEncoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "NoPositionalEncoding",
    "sinusoidal_table",
    "build",
    "available",
    "get_class",
    "SCHEMES",
]
