"""Fixed sinusoidal position vectors (Vaswani et al. 2017, "Attention Is All You Need", §3.5).

    PE[pos, 2i]   = sin(pos / 10000^(2i/d))
    PE[pos, 2i+1] = cos(pos / 10000^(2i/d))

The frequencies are computed in log space, ``exp(-ln(10000) * 2i / d)``, once. Two layouts:

- ``"interleaved"`` (the paper, and the classic PyTorch tutorial): sin in even columns, cos in odd.
- ``"halves"`` (tensor2tensor / fairseq): all sines in the first half, all cosines in the second.
  Same frequencies as interleaved, only the columns are permuted. (tensor2tensor and fairseq use
  ``ln(10000) / (d/2 - 1)`` as the step, so their frequencies differ slightly from the paper's.)

Odd ``d_model``: the formula is used as written (with d = d_model); the last sine column has no
cosine partner, so there are (d+1)/2 sine columns and (d-1)/2 cosine columns.

Why it works: for each frequency w, (sin, cos) at pos + k is a rotation of (sin, cos) at pos by
angle w*k, so PE(pos + k) is a fixed linear map of PE(pos) and PE(p) . PE(p + k) depends only on k.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import TokvecValueError
from .base import PositionalEncoding, check_positive_int

LAYOUTS = ("interleaved", "halves")


def sinusoidal_table(
    n_positions: int,
    d_model: int,
    *,
    base: float = 10000.0,
    layout: str = "interleaved",
    offset: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Tensor:
    """The sinusoid table for positions ``offset .. offset + n_positions - 1``: (n_positions, d_model)."""
    # float64 for the angles: pos * w loses digits in float32 once pos reaches the tens of thousands
    pos = torch.arange(offset, offset + n_positions, dtype=torch.float64, device=device)
    return sinusoids(pos, d_model, base=base, layout=layout).to(dtype)


def sinusoids(positions: Tensor, d_model: int, *, base: float = 10000.0, layout: str = "interleaved") -> Tensor:
    """The sinusoid vectors of (possibly fractional) positions, in the positions' float dtype.

    positions: (...) float -> (..., d_model). Integer positions give the rows of :func:`sinusoidal_table`;
    fractional ones are what CAPE (:mod:`tokvec.positional.cape`) feeds it.
    """
    if layout not in LAYOUTS:
        raise TokvecValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    d_even = d_model + (d_model % 2)
    inv_freq = torch.exp(
        torch.arange(0, d_even, 2, dtype=positions.dtype, device=positions.device) * (-math.log(base) / d_model)
    )
    angles = positions.unsqueeze(-1) * inv_freq  # (..., d_even/2)
    table = torch.empty(*positions.shape, d_even, dtype=positions.dtype, device=positions.device)
    if layout == "interleaved":
        table[..., 0::2] = torch.sin(angles)
        table[..., 1::2] = torch.cos(angles)
    else:
        half = d_even // 2
        table[..., :half] = torch.sin(angles)
        table[..., half:] = torch.cos(angles)
    return table[..., :d_model]


class SinusoidalPositionalEncoding(PositionalEncoding):
    """Adds the fixed sinusoid table to token vectors. No parameters; any length.

    The table is precomputed for ``max_len`` positions as a non-persistent buffer (not saved in
    checkpoints: it is a pure function of d_model) and grows on demand when a longer input comes.
    """

    name = "sinusoidal"
    acts_on = "input"

    def __init__(self, d_model: int, max_len: int = 5000, *, base: float = 10000.0, layout: str = "interleaved"):
        super().__init__()
        self.d_model = check_positive_int("d_model", d_model)
        check_positive_int("max_len", max_len)
        if not base > 1:
            raise TokvecValueError(f"base must be > 1, got {base!r}")
        if layout not in LAYOUTS:
            raise TokvecValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        self.base, self.layout = float(base), layout
        self.register_buffer("_pe", sinusoidal_table(max_len, d_model, base=base, layout=layout), persistent=False)

    @property
    def max_len(self) -> int:
        """Positions currently precomputed (grows on demand)."""
        return self._pe.shape[0]

    def _grow(self, needed: int) -> None:
        if needed > self._pe.shape[0]:
            n = max(needed, 2 * self._pe.shape[0])
            self._pe = sinusoidal_table(
                n, self.d_model, base=self.base, layout=self.layout, dtype=self._pe.dtype, device=self._pe.device
            )

    def table(self, seq_len: int, offset: int = 0) -> Tensor:
        """PE rows for positions ``offset .. offset + seq_len - 1``: (seq_len, d_model)."""
        self._grow(offset + seq_len)
        return self._pe[offset : offset + seq_len]

    def pe(self, positions: Tensor) -> Tensor:
        """positions: (s,) or (b, s) -> (s, d_model) or (b, s, d_model)."""
        if positions.numel():
            self._grow(int(positions.max()) + 1)
        return self._pe[positions]

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, layout={self.layout!r}, base={self.base:g}, max_len={self.max_len}"
