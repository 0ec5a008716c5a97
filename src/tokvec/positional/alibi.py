"""ALiBi, attention with linear biases (Press et al. 2022, "Train Short, Test Long").

No position vectors at all: head h subtracts ``m_h * (i - j)`` from the score of query i for key j,
a penalty growing linearly with distance, with a different slope per head. The slopes are the
paper's geometric sequence: for n heads (a power of 2) m_h = 2^(-8h/n), h = 1..n, so 8 heads get
2^-1 .. 2^-8. For other head counts the paper's code takes the slopes of the nearest lower power of
2 and fills the rest with every other slope of the next power of 2 (the function ``get_slopes`` in
the authors' repository), reproduced by :func:`alibi_slopes`.

How it reaches attention. Under a causal mask, -m_h (i - j) and m_h * j differ by -m_h * i, the
same for every key a query sees, and softmax ignores a constant per row. So by default
(``fold=True``) :meth:`rotate` appends one dimension to q (1) and k (m_h * j * sqrt(hd)): q.k
then carries the bias and attention keeps the causal fused kernel, which skips the masked half of
the scores (a float mask cannot: 1.5x slower at s=1024). Folding is used for float32/float64; the
logits carry m_h * j, so at j = 10^5 they lose ~1e-3 to rounding, and half precision would lose far
more, so for float16/bfloat16 (or ``fold=False``) the bias goes in as a float mask from
:meth:`score_bias`, built once per (lengths, offset) and shared by every layer and step.
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
        return [start * start ** i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


class ALiBiPositionalEncoding(PositionalEncoding):
    """Adds ``-m_h * |i - j|`` to the scores of head h. No parameters; any length."""

    name = "alibi"
    acts_on = "attention"

    rotates = True  # only to fold the bias into q and k, see the module docstring

    def __init__(self, n_heads: int | None = None, *, fold: bool = True) -> None:
        super().__init__()
        if n_heads is None:
            raise TokvecValueError("positional scheme 'alibi' biases each attention head and needs n_heads; "
                                   "pass n_heads= (the attention head count of the model)")
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(n_heads), dtype=torch.float32), persistent=False)
        self.fold = bool(fold)

    def _folds(self, x: Tensor) -> bool:
        return self.fold and x.dtype in (torch.float32, torch.float64)

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """Fold the bias into one extra dimension. q, k: (b, h, s, hd) -> (b, h, s, hd + 1) each.

        q gains a 1, key j gains m_h * j * sqrt(hd), so q.k / sqrt(hd) gains m_h * j. Unchanged
        (and :meth:`score_bias` used instead) when folding is off or the dtype is half precision.
        """
        if not self._folds(q):
            return q, k
        b, h, s, hd = q.shape
        if h != self.n_heads:
            raise TokvecValueError(f"alibi was built for {self.n_heads} heads, got q with {h}")
        if positions.numel() and int(positions.min()) < 0:
            raise TokvecValueError(f"positions must be >= 0, got {int(positions.min())}")
        key_term = self.slopes.to(k.dtype).view(h, 1, 1) * positions.to(k.dtype).view(1, -1, 1) * math.sqrt(hd)
        q = torch.cat([q, q.new_ones(b, h, s, 1)], dim=-1)
        k = torch.cat([k, key_term.expand(b, h, s, 1)], dim=-1)
        return q, k

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
