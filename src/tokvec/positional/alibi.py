"""ALiBi, attention with linear biases (Press et al. 2022, "Train Short, Test Long").

No position vectors at all: head h subtracts ``m_h * (i - j)`` from the score of query i for key j,
a penalty growing linearly with distance, with a different slope per head. The slopes are the
paper's geometric sequence: for n heads (a power of 2) m_h = 2^(-8h/n), h = 1..n, so 8 heads get
2^-1 .. 2^-8. For other head counts the paper's code takes the slopes of the nearest lower power of
2 and fills the rest with every other slope of the next power of 2 (the function ``get_slopes`` in
the authors' repository), reproduced by :func:`alibi_slopes`.

The bias is a pure function of (q_len, k_len, offset), so it is built once per length and shared by
every layer and step that asks for it (and goes to ``F.scaled_dot_product_attention`` as a float mask).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import TokvecValueError
from .base import PositionalEncoding, check_offset, check_positive_int


def alibi_slopes(n_heads: int) -> list[float]:
    """The per-head slopes m_h of the paper. ``alibi_slopes(4) -> [0.25, 0.0625, 0.015625, 0.00390625]``."""
    check_positive_int("n_heads", n_heads)

    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


class ALiBiPositionalEncoding(PositionalEncoding):
    """Adds ``-m_h * |i - j|`` to the scores of head h. No parameters; any length."""

    name = "alibi"
    acts_on = "attention"
    has_score_bias = True

    def __init__(self, n_heads: int | None = None) -> None:
        super().__init__()
        if n_heads is None:
            raise TokvecValueError(
                "positional scheme 'alibi' biases each attention head and needs n_heads; "
                "pass n_heads= (the attention head count of the model)"
            )
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(n_heads), dtype=torch.float32), persistent=False)

    def score_bias(self, q_len: int, k_len: int, offset: int = 0) -> Tensor:
        """(h, q_len, k_len): ``-slope_h * |(offset + i) - j|``. Built once per (lengths, offset, device, dtype)."""
        check_offset(offset)
        slopes = self.slopes

        def make() -> Tensor:
            i = torch.arange(offset, offset + q_len, device=slopes.device).unsqueeze(1)
            j = torch.arange(k_len, device=slopes.device).unsqueeze(0)
            distance = (i - j).abs().to(torch.float32)  # (q_len, k_len)
            return (-slopes.float().view(-1, 1, 1) * distance).to(slopes.dtype)  # (h, q_len, k_len)

        return self._memo(("bias", q_len, k_len, offset, slopes.device, slopes.dtype), make)

    def extra_repr(self) -> str:
        return f"n_heads={self.n_heads}"
