"""Transformer-XL relative positions (Dai et al. 2019, "Transformer-XL", §3.3).

The absolute score q_i . k_j of a model with additive positions expands into four terms; XL keeps
their shape but makes every position relative:

    A_ij = q_i . k_j                 (a) content
         + q_i . W_R R_{i-j}         (b) content-dependent position
         + u   . k_j                 (c) global content bias
         + v   . W_R R_{i-j}         (d) global position bias

R_{i-j} is the fixed sinusoid of the distance i - j (sines then cosines, as in the authors' code),
W_R a learned projection to the heads, u and v learned per-head vectors. (a) is the ordinary
q.k that ``F.scaled_dot_product_attention`` computes; (b) + (c) + (d) =
(q_i + v) . W_R R_{i-j} + u . k_j is returned by :meth:`score_term` and goes in as a float mask.

The (b)+(d) matrix is computed once per distance (s + t - 1 of them), then gathered into (i, j)
(the paper's "relative shift"). One scheme instance serves every layer it is given to: a model that
shares it shares W_R, u and v (the paper shares u and v across layers; W_R is per layer there).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import PositionalEncoding, check_offset, resolve_heads
from .sinusoidal import sinusoidal_table


class TransformerXLPositionalEncoding(PositionalEncoding):
    """Sinusoidal R(i - j) projected per head, with u/v biases; scores only."""

    name = "xl"
    acts_on = "attention"
    has_score_term = True

    def __init__(
        self,
        d_model: int | None = None,
        n_heads: int | None = None,
        head_dim: int | None = None,
        *,
        base: float = 10000.0,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        self.n_heads, self.head_dim = resolve_heads(self.name, d_model, n_heads, head_dim)
        self.d_model = d_model if d_model is not None else self.n_heads * self.head_dim
        self.base = float(base)
        self.r_proj = nn.Linear(self.d_model, self.n_heads * self.head_dim, bias=False)  # W_{k,R}
        nn.init.normal_(self.r_proj.weight, mean=0.0, std=std)
        self.u = nn.Parameter(torch.zeros(self.n_heads, self.head_dim))  # content bias
        self.v = nn.Parameter(torch.zeros(self.n_heads, self.head_dim))  # position bias

    def distance_index(self, q_len: int, k_len: int, device=None) -> Tensor:
        """Row of the distance table for each (i, j): i - j + k_len - 1, (q_len, k_len) int64; memoised.

        The table lists distances ``offset - (k_len - 1) .. offset + q_len - 1`` in order, so the row
        does not depend on the offset.
        """

        def make() -> Tensor:
            i = torch.arange(q_len, device=device).unsqueeze(1)
            return i - torch.arange(k_len, device=device).unsqueeze(0) + (k_len - 1)

        return self._memo(("index", q_len, k_len, device), make)

    def sinusoids(self, q_len: int, k_len: int, offset: int, device=None, dtype=torch.float32) -> Tensor:
        """R for distances ``offset - (k_len-1) .. offset + q_len - 1``: (q_len + k_len - 1, d_model); memoised."""
        n, first = q_len + k_len - 1, offset - (k_len - 1)
        return self._memo(
            ("R", n, first, device, dtype),
            lambda: sinusoidal_table(
                n, self.d_model, base=self.base, layout="halves", offset=first, dtype=dtype, device=device
            ),
        )

    def score_term(self, q: Tensor, k: Tensor, offset: int = 0) -> Tensor:
        """q: (b, h, s, hd), k: (b, h, t, hd) -> ((q_i + v) . W_R R_{i-j} + u . k_j) / sqrt(hd): (b, h, s, t)."""
        check_offset(offset)
        b, h, s, hd = q.shape
        t = k.shape[2]
        w = self.r_proj.weight
        r = self.r_proj(self.sinusoids(s, t, offset, w.device, w.dtype))  # (s+t-1, h*hd)
        r = r.view(-1, h, hd).transpose(0, 1).to(q.dtype)  # (h, s+t-1, hd)
        per_distance = (q + self.v.to(q.dtype).unsqueeze(1)) @ r.transpose(-1, -2)  # (b, h, s, s+t-1)
        position = per_distance.gather(-1, self.distance_index(s, t, q.device).expand(b, h, s, t))  # (b, h, s, t)
        content = (k @ self.u.to(k.dtype).unsqueeze(-1)).transpose(-1, -2)  # (b, h, 1, t)
        return (position + content) / math.sqrt(hd)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}, head_dim={self.head_dim}"
