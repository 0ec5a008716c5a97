"""Causal multi-head self-attention with an injected positional scheme and a KV cache.

The positional scheme is handed in ready-made (``positional=rope``); the layer asks it to rotate the
new q/k (RoPE), for a score bias (ALiBi, T5) and for a q/k-dependent score term (Shaw relative keys,
Transformer-XL), and otherwise stays on ``F.scaled_dot_product_attention`` (bias and term go in as
one float ``attn_mask``). A learned term of the distance alone (T5, Shaw keys and values: the
scheme's ``distance_scores``) goes through :mod:`tokvec.model.fast.banded`, which keeps the fused kernel
in the backward pass as well. The layer computes the weights explicitly only for ``need_weights=True``
and, with dropout, for a scheme that adds to the values.

Grouped-query attention (Ainslie et al. 2023, Llama 2 70B, Llama 3): ``n_kv_heads`` < ``n_heads``
key/value heads, each shared by a group of n_heads / n_kv_heads query heads. The cache holds the
n_kv_heads heads (that is the saving); they are repeated to n_heads right before the scores.

Shape legend: b = batch, s = new tokens, t = cached + new tokens, h = heads, hk = key/value heads,
hd = head_dim, d = d_model.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import TokvecValueError
from ..positional import PositionalEncoding
from ..positional.base import check_positive_int, head_dim_for
from .fast import banded


class KVCache:
    """Keys and values of the tokens seen so far, one (k, v) pair per layer.

    k, v: (b, h, t, hd). ``length`` is t, the position offset of the next token.
    """

    def __init__(self, n_layers: int) -> None:
        self.layers: list[tuple[Tensor, Tensor] | None] = [None] * n_layers

    @property
    def length(self) -> int:
        # read from the LAST layer: during a forward, layers 0..i-1 already hold the new tokens
        # when layer i asks for its offset; the last layer is updated last, so it still tells the
        # length before this forward to every layer (layers[0] gave layers >= 1 the wrong offset)
        last = self.layers[-1]
        return 0 if last is None else last[0].shape[2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new k, v (b, h, s, hd) to layer ``layer``; return the full (b, h, t, hd) pair."""
        old = self.layers[layer]
        if old is not None:
            k, v = torch.cat([old[0], k], dim=2), torch.cat([old[1], v], dim=2)
        self.layers[layer] = (k, v)
        return k, v

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions (to slide a window or undo a step)."""
        self.layers = [None if kv is None else (kv[0][:, :, :length], kv[1][:, :, :length]) for kv in self.layers]


def causal_mask(q_len: int, k_len: int, offset: int, device=None) -> Tensor:
    """Bool mask (q_len, k_len), True where query i (at offset + i) may see key j (j <= offset + i)."""
    q = torch.arange(offset, offset + q_len, device=device).unsqueeze(1)
    return torch.arange(k_len, device=device).unsqueeze(0) <= q


# Queries per block on the path that cannot skip the future itself (see CausalSelfAttention.forward):
# a learned score term on SDPA's math path (XL; T5 on short sequences). 128 measured best on a CPU:
# against 256, XL 0.89x the time at s=256 and 0.9x at s=1024, T5 0.9x at s=256.
QUERY_BLOCK = 128


# The banded backward (model/fast/banded.py) recomputes a band of W diagonals; it pays off once the keys
# are a few band widths long. Measured for T5 (W = 113) on a CPU, layer time against NoPE's, the two
# paths interleaved: 256 keys math 1.09x / banded 1.37x, 512: 1.20x / 1.31x, 768: 1.56x / 1.31x,
# 1024: 1.74x / 1.32x.
BAND_PAYS_OFF = 5


@lru_cache(maxsize=32)
def _future_mask(q_len: int, k_len: int, offset: int, device) -> Tensor:
    """Bool (q_len, k_len), True where key j is in query i's future; built once per shape (read-only)."""
    return ~causal_mask(q_len, k_len, offset, device=device)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention. x: (b, s, d) -> (b, s, d)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        positional: PositionalEncoding,
        dropout: float = 0.0,
        bias: bool = True,
        layer_index: int = 0,
        n_kv_heads: int | None = None,
        qkv_bias: bool | None = None,
    ) -> None:
        super().__init__()
        head_dim = head_dim_for(d_model, n_heads)
        n_kv_heads = n_heads if n_kv_heads is None else check_positive_int("n_kv_heads", n_kv_heads)
        if n_heads % n_kv_heads:
            raise TokvecValueError(f"n_kv_heads ({n_kv_heads}) must divide n_heads ({n_heads})")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, head_dim
        self.n_kv_heads = n_kv_heads
        self.kv_dim = n_kv_heads * self.head_dim
        # q, k, v in one matmul: (d) -> (d + 2 * kv_dim); with qkv_bias alone (Qwen2) proj has none
        self.qkv = nn.Linear(d_model, d_model + 2 * self.kv_dim, bias=bias if qkv_bias is None else qkv_bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)
        self.positional = positional
        self.layer_index = layer_index

    def forward(
        self, x: Tensor, *, cache: KVCache | None = None, need_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x: (b, s, d) -> y: (b, s, d); with ``need_weights`` also the attention (b, h, s, t)."""
        b, s, d = x.shape
        offset = cache.length if cache is not None else 0
        q, k, v = self.qkv(x).split([d, self.kv_dim, self.kv_dim], dim=2)
        q = q.view(b, s, self.n_heads, self.head_dim).transpose(1, 2)  # (b, h, s, hd)
        k = k.view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (b, hk, s, hd)
        v = v.view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (b, hk, s, hd)
        pos = self.positional
        if pos.rotates:
            q, k = pos.rotate(q, k, torch.arange(offset, offset + s, device=x.device), end=offset + s)
        if cache is not None:
            k, v = cache.update(self.layer_index, k, v)  # (b, hk, t, hd)
        k, v = self.repeat_kv(k), self.repeat_kv(v)  # (b, h, t, hd)
        p = self.dropout if self.training else 0.0
        if not need_weights and not pos.adds_values and not pos.adds_scores:
            # no score term: one fused call; s == 1 with a cache sees every key and needs no mask
            if offset == 0 or s == 1:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=offset == 0 and s > 1)
            else:
                y = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=~_future_mask(s, k.shape[2], offset, x.device), dropout_p=p
                )
            weights = None
        elif not need_weights and p == 0.0 and (y := self._fused(q, k, v, offset)) is not None:
            weights = None  # the fused kernel, the whole sequence in one call
        else:
            # Query blocks, each against only the keys it can see: a score term needs an explicit
            # mask, and a masked kernel cannot skip the future half of the scores the way a causal one
            # does. A block is exactly a chunk of a KV-cache prefill (queries at offset + a).
            parts = [
                self._block(q[:, :, a : a + QUERY_BLOCK], k, v, offset + a, p, need_weights)
                for a in range(0, s, QUERY_BLOCK)
            ]
            y = torch.cat([part[0] for part in parts], dim=2) if len(parts) > 1 else parts[0][0]
            weights = None
            if need_weights:
                t = k.shape[2]
                weights = torch.cat([F.pad(w, (0, t - w.shape[-1])) for _, w in parts], dim=2)  # (b, h, s, t)
        y = y.transpose(1, 2).contiguous().view(b, s, d)  # (b, s, d)
        y = self.proj(y)
        if self.training and self.resid_dropout.p > 0:  # no call at p = 0: a module call per layer per step
            y = self.resid_dropout(y)
        return (y, weights) if need_weights else y

    def repeat_kv(self, x: Tensor) -> Tensor:
        """Key/value heads repeated for their query groups: (b, hk, t, hd) -> (b, h, t, hd).

        Head j of the output is kv head j // (h / hk), as Hugging Face's ``repeat_kv``."""
        if self.n_kv_heads == self.n_heads:
            return x
        return x.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)

    def _fused(self, q: Tensor, k: Tensor, v: Tensor, offset: int) -> Tensor | None:
        """The fused CPU kernel for a score-adding scheme, with the kernel's own causal skipping of the
        future half (no query blocks), or None when this scheme or build cannot use it.

        A learned term of the distance alone (T5, Shaw keys and values) goes through
        :func:`banded.relative_attention`, a constant bias (ALiBi) through :func:`banded.masked_attention`.
        """
        if not banded.available(q):
            return None
        pos = self.positional
        table = pos.distance_scores(q)  # (B', h, s', W + 1) or None
        if table is not None:
            if table.requires_grad and k.shape[2] < BAND_PAYS_OFF * (table.shape[-1] - 1):
                return None  # the band is most of the causal triangle: the query blocks' math path is cheaper
            values = pos.distance_values()
            return banded.relative_attention(
                q, k, v, table.to(q.dtype), None if values is None else values.to(q.dtype), offset
            )
        if pos.adds_values or pos.has_score_term:
            return None  # a term of q and k (Transformer-XL): the query blocks below
        mask = pos.attention_bias(q.shape[2], k.shape[2], offset)  # (1, h, s, t), -inf in the future
        return None if mask is None else banded.masked_attention(q, k, v, mask.to(q.dtype), offset)

    def _block(
        self, q: Tensor, k: Tensor, v: Tensor, offset: int, p: float, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """Queries q: (b, h, s, hd) at ``offset ..``, against the keys they can see among k, v: (b, h, t, hd).

        Returns y: (b, h, s, hd) and, with ``need_weights`` (or a value term and dropout), the
        weights (b, h, s, offset + s).
        """
        s = q.shape[2]
        t = offset + s  # the last query sees keys 0 .. offset + s - 1
        k, v = k[:, :, :t], v[:, :, :t]
        pos = self.positional
        future = _future_mask(s, t, offset, q.device)
        if need_weights or pos.adds_values:
            extra = pos.score_bias(s, t, offset)  # (h, s, t) or None
            term = pos.score_term(q, k, offset)  # (b, h, s, t) or None
            if term is not None:
                extra = term if extra is None else term + extra.to(term.dtype)
            return self._explicit(q, k, v, extra, future, offset, p)
        bias = pos.attention_bias(s, t, offset)  # (1, h, s, t), future at -inf, or None
        term = pos.score_term(q, k, offset)  # (b, h, s, t) or None
        if term is None:
            # a 4-D (1, h, s, t) mask, not (h, s, t): the fused CPU kernel takes a 2-D or 4-D mask
            # only and silently falls back to the unfused math path (over 2x slower at s=1024) for 3-D
            mask = ~future if bias is None else bias.to(q.dtype)
        else:
            mask = term.masked_fill(future, float("-inf")) if bias is None else term + bias.to(term.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p), None

    def _explicit(
        self, q: Tensor, k: Tensor, v: Tensor, extra: Tensor | None, future: Tensor, offset: int, p: float
    ) -> tuple[Tensor, Tensor]:
        """The same attention written out, returning the weights (b, h, s, t) for inspection.

        extra: (h, s, t) or (b, h, s, t) added to the scaled scores; future: (s, t) bool, True where
        masked. The scheme's value term, if any, sees the weights after dropout, as ``v`` does.
        """
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (b, h, s, t)
        if extra is not None:
            scores = scores + extra.to(scores.dtype)
        scores = scores.masked_fill(future, float("-inf"))
        weights = scores.softmax(dim=-1)
        dropped = F.dropout(weights, p) if p > 0 else weights
        y = dropped @ v  # (b, h, s, hd)
        if self.positional.adds_values:
            y = y + self.positional.value_term(dropped, offset)
        return y, weights
