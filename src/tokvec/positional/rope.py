"""Rotary position embedding, RoPE (Su et al. 2021, "RoFormer", §3.4).

Each pair of dimensions (x_2i, x_2i+1) of a query or key at position m is rotated by the angle
m * theta_i, theta_i = base^(-2i/hd). A rotation keeps lengths and composes additively, so the
rotated q_m . k_n depends on the content and on m - n only: relative position from absolute
rotations, with nothing added to the scores and ``F.scaled_dot_product_attention`` left intact.

Layouts of the pairs (the same rotation, only the dimensions are permuted):

- ``"interleaved"`` (the paper, torchtune, rotary-embedding-torch): pairs are (0, 1), (2, 3), ...
- ``"halves"`` (GPT-NeoX, Hugging Face Llama): pairs are (i, i + hd/2).

Context-length scaling, to run a model past the length it was trained at (``factor`` = new / old):

- ``"linear"``: position interpolation (Chen et al. 2023), every angle divided by ``factor``.
- ``"ntk"``: "NTK-aware" scaling (bloc97, 2023), base multiplied by factor^(hd / (hd - 2)): low
  frequencies are interpolated, the highest one is left as it is.
- ``"yarn"``: YaRN (Peng et al. 2023): per frequency, interpolate those whose wavelength is long
  relative to ``original_max_len`` and keep the short ones (a linear ramp between beta_fast=32 and
  beta_slow=1 rotations), and scale q and k by 0.1 ln(factor) + 1 (the attention temperature).
  Same formula as Hugging Face ``_compute_yarn_parameters``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import TokvecValueError
from .base import PositionalEncoding, check_positive_int, resolve_heads

SCALINGS = ("none", "linear", "ntk", "yarn")
LAYOUTS = ("interleaved", "halves")


def rope_frequencies(
    head_dim: int,
    *,
    base: float = 10000.0,
    scaling: str = "none",
    factor: float = 1.0,
    original_max_len: int = 2048,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
) -> tuple[Tensor, float]:
    """The rotation frequencies theta_i (head_dim/2,) float64 and the q/k scale (1.0 but for yarn).

    >>> rope_frequencies(4)[0]        # base^(-0/4), base^(-2/4)
    tensor([1.0000, 0.0100], dtype=torch.float64)
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    if scaling == "ntk":
        base = base * factor ** (head_dim / (head_dim - 2)) if head_dim > 2 else base * factor
    inv_freq = 1.0 / base**exponents
    if scaling == "linear":
        return inv_freq / factor, 1.0
    if scaling != "yarn":
        return inv_freq, 1.0

    def correction_dim(rotations: float) -> float:  # the dimension that turns `rotations` times over the context
        return head_dim * math.log(original_max_len / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
    if low == high:
        high += 0.001  # avoid a zero-width ramp
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    keep = 1.0 - ramp  # 1: keep the frequency (extrapolate), 0: interpolate it by `factor`
    inv_freq = inv_freq / factor * (1.0 - keep) + inv_freq * keep
    mscale = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, mscale


def _pairs_viewable(x: Tensor) -> bool:
    """True when x's (even, odd) dimension pairs can be viewed as complex numbers without a copy."""
    return x.stride(-1) == 1 and x.storage_offset() % 2 == 0 and all(s % 2 == 0 for s in x.stride()[:-1])


class RotaryPositionalEncoding(PositionalEncoding):
    """Rotates q and k by their absolute positions; nothing is added anywhere. Any length.

    cos/sin tables are precomputed for ``max_len`` positions (non-persistent buffers, a pure function
    of the options) and grow on demand.
    """

    name = "rope"
    acts_on = "attention"
    rotates = True

    def __init__(
        self,
        d_model: int | None = None,
        n_heads: int | None = None,
        head_dim: int | None = None,
        max_len: int = 2048,
        *,
        base: float = 10000.0,
        scaling: str = "none",
        factor: float = 1.0,
        original_max_len: int | None = None,
        layout: str = "interleaved",
    ) -> None:
        super().__init__()
        self.n_heads, self.head_dim = resolve_heads(self.name, d_model, n_heads, head_dim)
        if self.head_dim % 2:
            where = f" (d_model {d_model} / n_heads {n_heads})" if d_model is not None else ""
            raise TokvecValueError(
                f"rope rotates pairs of dimensions and needs an even head_dim, got "
                f"{self.head_dim}{where}; choose d_model and n_heads so that the head size is even"
            )
        check_positive_int("max_len", max_len)
        if not (isinstance(base, (int, float)) and base > 1):
            raise TokvecValueError(f"rope base must be > 1, got {base!r}")
        if scaling not in SCALINGS:
            raise TokvecValueError(f"unknown rope scaling {scaling!r}; choose one of {', '.join(SCALINGS)}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise TokvecValueError(
                f"rope scaling factor must be > 0, got {factor!r}; it is the new context length "
                f"over the trained one (e.g. 4.0 to run a 512-token model at 2048)"
            )
        if scaling == "none" and factor != 1:
            raise TokvecValueError(
                f"rope scaling factor {factor!r} needs a scaling method; pass scaling= one of "
                f"linear, ntk, yarn (or leave factor at 1.0)"
            )
        if layout not in LAYOUTS:
            raise TokvecValueError(f"unknown rope layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        self.original_max_len = check_positive_int("original_max_len", original_max_len or max_len)
        self.base, self.scaling, self.factor, self.layout = float(base), scaling, float(factor), layout
        inv_freq, self.mscale = rope_frequencies(
            self.head_dim, base=self.base, scaling=scaling, factor=self.factor, original_max_len=self.original_max_len
        )
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self._inv_freq64 = inv_freq
        cos, sin, cis = self._tables(max_len)
        self.register_buffer("_cos", cos, persistent=False)
        self.register_buffer("_sin", sin, persistent=False)
        self.register_buffer("_cis", cis, persistent=False)

    def _tables(self, n: int, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor, Tensor]:
        """cos and sin per position and dimension laid out like q, two (n, head_dim) tables, and
        mscale * e^(i m theta) per position and pair, (n, head_dim/2) complex."""
        # float64 angles: m * theta loses digits in float32 once m reaches the tens of thousands
        angles = torch.arange(n, dtype=torch.float64).unsqueeze(1) * self._inv_freq64  # (n, hd/2)
        cis = torch.polar(torch.full_like(angles, self.mscale), angles)  # (n, hd/2) complex128
        if self.layout == "interleaved":
            angles = angles.repeat_interleave(2, dim=1)  # (n, hd): theta_0 theta_0 theta_1 theta_1 ...
        else:
            angles = torch.cat([angles, angles], dim=1)  # (n, hd): theta_0 .. theta_{hd/2-1} twice
        cos, sin = angles.cos() * self.mscale, angles.sin() * self.mscale
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return (
            cos.to(device=device, dtype=dtype),
            sin.to(device=device, dtype=dtype),
            cis.to(device=device, dtype=complex_dtype),
        )

    @property
    def max_len(self) -> int:
        """Positions currently precomputed (grows on demand)."""
        return self._cos.shape[0]

    def _grow(self, needed: int) -> None:
        if needed > self._cos.shape[0]:
            self._cos, self._sin, self._cis = self._tables(
                max(needed, 2 * self._cos.shape[0]), self._cos.device, self._cos.dtype
            )

    def _rotate_pairs(self, x: Tensor) -> Tensor:
        """The partner of every dimension with the sign of the sine: (-x1, x0) per pair. x: (..., hd)."""
        if self.layout == "interleaved":
            pairs = x.unflatten(-1, (-1, 2))  # (..., hd/2, 2)
            return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        x0, x1 = x.chunk(2, dim=-1)
        return torch.cat((-x1, x0), dim=-1)

    def apply(self, x: Tensor, positions: Tensor, *, end: int | None = None) -> Tensor:
        """Rotate x by its positions. x: (b, h, s, hd) (or any (..., s, hd)); positions: (s,) int >= 0.

        end: positions are known to lie in [0, end): no min/max read back (a device sync on a GPU)."""
        if x.shape[-1] != self.head_dim:
            raise TokvecValueError(f"rope was built for head_dim {self.head_dim}, got vectors of size {x.shape[-1]}")
        if end is not None:
            self._grow(end)
        elif positions.numel():
            lo, hi = int(positions.min()), int(positions.max())
            if lo < 0:
                raise TokvecValueError(f"positions must be >= 0, got {lo}")
            self._grow(hi + 1)
        if self.layout == "interleaved" and x.dtype in (torch.float32, torch.float64) and _pairs_viewable(x):
            # one complex multiply per element pair instead of ~6 real passes (4x faster fwd+bwd on a CPU)
            cis = self._cis[positions].to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
            return torch.view_as_real(torch.view_as_complex(x.unflatten(-1, (-1, 2))) * cis).flatten(-2)
        cos, sin = self._cos[positions].to(x.dtype), self._sin[positions].to(x.dtype)  # (s, hd)
        return x * cos + self._rotate_pairs(x) * sin

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor, *, end: int | None = None) -> tuple[Tensor, Tensor]:
        """q, k: (b, h, s, hd); positions: (s,) -> rotated (q, k), same shapes (``end``: see the base class)."""
        return self.apply(q, positions, end=end), self.apply(k, positions, end=end)

    def extra_repr(self) -> str:
        scaling = f", scaling={self.scaling!r}, factor={self.factor:g}" if self.scaling != "none" else ""
        return f"head_dim={self.head_dim}, base={self.base:g}, layout={self.layout!r}{scaling}"
