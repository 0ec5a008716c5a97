"""Learned absolute position vectors (GPT-2's ``wpe``): one trained row per position up to max_len."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import TokvecValueError
from .base import PositionalEncoding, check_positive_int


class LearnedPositionalEncoding(PositionalEncoding):
    """A (max_len, d_model) table of trained vectors, initialised N(0, std). Cannot go past max_len."""

    name = "learned"
    acts_on = "input"
    extrapolates = False  # no row past max_len

    def __init__(self, d_model: int, max_len: int = 1024, *, std: float = 0.02):
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        self.max_len = check_positive_int("max_len", max_len)
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, mean=0.0, std=std)

    def _check(self, last: int) -> None:
        if last >= self.max_len:
            raise TokvecValueError(
                f"position {last} is beyond the learned table (max_len {self.max_len}, positions 0..{self.max_len - 1}); "
                f"use a shorter input, a larger max_len (context_length), or a scheme that extrapolates "
                f"(sinusoidal, rope, alibi)"
            )

    def table(self, seq_len: int, offset: int = 0) -> Tensor:
        """Rows for positions ``offset .. offset + seq_len - 1``: (seq_len, d_model)."""
        if seq_len:
            self._check(offset + seq_len - 1)
        return self.weight[offset : offset + seq_len]

    def pe(self, positions: Tensor) -> Tensor:
        """positions: (s,) or (b, s) -> (s, d_model) or (b, s, d_model)."""
        if positions.numel():
            self._check(int(positions.max()))
        return self.weight[positions]

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}"
