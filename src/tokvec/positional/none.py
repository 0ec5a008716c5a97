"""NoPE: no positional information at all; a causal mask alone lets a decoder infer order
(Haviv et al. 2022, "Transformer Language Models without Positional Encodings Still Learn Positional
Information"). Useful as the baseline every other scheme is measured against."""

from __future__ import annotations

from .base import PositionalEncoding


class NoPositionalEncoding(PositionalEncoding):
    """Adds nothing, rotates nothing, biases nothing."""

    name = "none"
    acts_on = "none"

    def __init__(self) -> None:
        super().__init__()
