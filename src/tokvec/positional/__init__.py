"""Positional encodings, chosen by name: ``tokvec.positional.build("sinusoidal", d_model=64)``."""

from .alibi import ALiBiPositionalEncoding, alibi_slopes
from .base import PositionalEncoding
from .cape import CAPEPositionalEncoding
from .learned import LearnedPositionalEncoding
from .none import NoPositionalEncoding
from .registry import SCHEMES, available, build, get_class
from .relative import ShawRelativePositionalEncoding
from .rope import RotaryPositionalEncoding, rope_frequencies
from .sinusoidal import SinusoidalPositionalEncoding, sinusoidal_table
from .t5 import T5RelativePositionalEncoding, t5_bucket
from .xl import TransformerXLPositionalEncoding

__all__ = [
    "PositionalEncoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEncoding",
    "NoPositionalEncoding",
    "RotaryPositionalEncoding",
    "ALiBiPositionalEncoding",
    "ShawRelativePositionalEncoding",
    "T5RelativePositionalEncoding",
    "TransformerXLPositionalEncoding",
    "CAPEPositionalEncoding",
    "rope_frequencies",
    "alibi_slopes",
    "t5_bucket",
    "sinusoidal_table",
    "build",
    "available",
    "get_class",
    "SCHEMES",
]
