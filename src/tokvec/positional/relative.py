"""Relative position representations (Shaw, Uszkoreit, Vaswani 2018, "Self-Attention with Relative
Position Representations").

Learned vectors a^K_d and (optionally) a^V_d, one per clipped relative distance
d = clip(j - i, -k, k) (k = ``max_relative_position``), shared across heads as in the paper:

    e_ij = q_i . (k_j + a^K_ij) / sqrt(hd)            (eq. 5)
    z_i  = sum_j alpha_ij (v_j + a^V_ij)              (eq. 3)

Every distance beyond k shares the embedding of k: the paper's argument is that precise relative
position stops being useful past a certain distance, and clipping lets the model run at lengths it
was not trained at.

The key term q_i . a^K_ij depends on the query, so it goes to attention through :meth:`score_term`
(q @ a^K^T per distance, then gathered per (i, j): one extra pass over the score matrix, and
``F.scaled_dot_product_attention`` still does the rest). The value term needs the weights; with
``values=True`` attention computes them explicitly and :meth:`value_term` adds
sum_j alpha_ij a^V_ij by summing the weights per distance (scatter-add) and multiplying by a^V.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import TokvecValueError
from .base import PositionalEncoding, check_offset, resolve_heads


class ShawRelativePositionalEncoding(PositionalEncoding):
    """Learned relative key (and value) embeddings, distance clipped at ``max_relative_position``."""

    name = "relative"
    acts_on = "attention"
    has_score_term = True

    def __init__(
        self,
        d_model: int | None = None,
        n_heads: int | None = None,
        head_dim: int | None = None,
        *,
        max_relative_position: int = 16,
        values: bool = True,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        self.n_heads, self.head_dim = resolve_heads(self.name, d_model, n_heads, head_dim)
        k = max_relative_position
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise TokvecValueError(
                f"max_relative_position must be an integer >= 1, got {k!r} "
                f"(the paper uses 16; it found 2 already enough for translation)"
            )
        self.max_relative_position = k
        self.key_table = nn.Parameter(torch.empty(2 * k + 1, self.head_dim))  # row d + k holds a^K_d
        nn.init.normal_(self.key_table, mean=0.0, std=std)
        self.adds_values = bool(values)
        if self.adds_values:
            self.value_table = nn.Parameter(torch.empty(2 * k + 1, self.head_dim))  # row d + k holds a^V_d
            nn.init.normal_(self.value_table, mean=0.0, std=std)

    def relative_index(self, q_len: int, k_len: int, offset: int = 0, device=None) -> Tensor:
        """Table row of each (query, key): clip(j - (offset + i), -k, k) + k, (q_len, k_len) int64; memoised."""
        check_offset(offset)
        k = self.max_relative_position

        def make() -> Tensor:
            i = torch.arange(offset, offset + q_len, device=device).unsqueeze(1)
            j = torch.arange(k_len, device=device).unsqueeze(0)
            return (j - i).clamp(-k, k) + k

        return self._memo(("index", q_len, k_len, offset, device), make)

    def score_term(self, q: Tensor, k: Tensor, offset: int = 0) -> Tensor:
        """q: (b, h, s, hd), k: (b, h, t, hd) -> q_i . a^K_ij / sqrt(hd): (b, h, s, t)."""
        b, h, s, hd = q.shape
        idx = self.relative_index(s, k.shape[2], offset, q.device)  # (s, t)
        per_distance = q @ self.key_table.to(q.dtype).t()  # (b, h, s, 2k+1)
        return per_distance.gather(-1, idx.expand(b, h, s, -1)) / math.sqrt(hd)  # (b, h, s, t)

    def _distance_rows(self, device) -> Tensor:
        """Table rows of distances 0 .. k (key at or before the query): k, k-1, .., 0; memoised."""
        k = self.max_relative_position
        return self._memo(("distance_rows", device), lambda: k - torch.arange(k + 1, device=device))

    def distance_scores(self, q: Tensor) -> Tensor:
        """q: (b, h, s, hd) -> (b, h, s, k + 1): q_i . a^K_-d / sqrt(hd) for d = 0 .. k; distances
        beyond k share the clipped row, so column k stands for them all."""
        rows = self._distance_rows(q.device)
        return q @ self.key_table[rows].to(q.dtype).t() / math.sqrt(q.shape[-1])

    def distance_values(self) -> Tensor | None:
        """(k + 1, hd): a^V_-d for d = 0 .. k, or None with values=False."""
        if not self.adds_values:
            return None
        return self.value_table[self._distance_rows(self.value_table.device)]

    def value_term(self, weights: Tensor, offset: int = 0) -> Tensor:
        """weights: (b, h, s, t) -> sum_j alpha_ij a^V_ij: (b, h, s, hd)."""
        if not self.adds_values:
            raise TokvecValueError("this 'relative' scheme was built with values=False; it adds no value term")
        b, h, s, t = weights.shape
        idx = self.relative_index(s, t, offset, weights.device).expand(b, h, s, t)
        per_distance = weights.new_zeros(b, h, s, self.key_table.shape[0]).scatter_add(-1, idx, weights)
        return per_distance @ self.value_table.to(weights.dtype)  # (b, h, s, hd)

    def extra_repr(self) -> str:
        return (
            f"head_dim={self.head_dim}, max_relative_position={self.max_relative_position}, values={self.adds_values}"
        )
