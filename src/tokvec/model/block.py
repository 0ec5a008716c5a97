"""One pre-norm Transformer block, the feed-forward network and the norm factory.

    x ──norm──attention──(+)──norm──feed-forward──(+)──▶
    └──────────────────────┘  └───────────────────────┘   residual stream

Shape legend: b = batch, s = seq, d = d_model, f = hidden (feed-forward) width.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..embedding import InputEmbedding
from ..positional import PositionalEncoding
from .attention import CausalSelfAttention, KVCache
from .config import ModelConfig


def make_norm(config: ModelConfig) -> nn.Module:
    """LayerNorm (with bias when config.bias) or RMSNorm (never a bias) over d_model."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


def make_input_embedding(config: ModelConfig) -> InputEmbedding:
    """The input stage of a model of ``config``: token table, positional scheme, dropout.
    (b, s) ids -> (b, s, d_model)."""
    return InputEmbedding(
        config.vocab_size,
        config.d_model,
        positional=config.positional,
        max_len=config.context_length,
        dropout=config.dropout,
        n_heads=config.n_heads,
        positional_options=dict(config.positional_options),
    )


class MLP(nn.Module):
    """The position-wise feed-forward network. x: (b, s, d) -> (b, s, d).

    gelu:   proj(gelu(fc(x)))                   fc: d -> f   (gelu_new: GELU's tanh approximation)
    swiglu: proj(silu(gate(x)) * up(x))         fc: d -> 2f (gate and up in one matmul)
    ``proj`` writes into the residual stream, so it gets the scaled GPT-2 init (see GPT).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.activation = config.activation
        hidden = config.hidden_dim
        width = 2 * hidden if self.activation == "swiglu" else hidden
        self.fc = nn.Linear(config.d_model, width, bias=config.bias)
        self.proj = nn.Linear(hidden, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)  # (b, s, f) or (b, s, 2f)
        if self.activation == "swiglu":
            gate, up = h.chunk(2, dim=-1)  # (b, s, f) each
            h = F.silu(gate) * up
        else:
            h = gelu(h, self.activation)
        h = self.proj(h)
        # no call at p = 0 (or in eval): a module call per block per step for nothing
        return self.dropout(h) if self.training and self.dropout.p > 0 else h


def gelu(x: Tensor, activation: str) -> Tensor:
    """``"gelu"``: the exact erf GELU, as nanoGPT; ``"gelu_new"``: the tanh approximation GPT-2 trained
    with (Hendrycks & Gimpel 2016, eq. 2; HF's ``gelu_new``). x: any shape -> the same shape."""
    return F.gelu(x, approximate="tanh" if activation == "gelu_new" else "none")


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(x)). x: (b, s, d) -> (b, s, d)."""

    def __init__(self, config: ModelConfig, positional: PositionalEncoding, layer_index: int) -> None:
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(
            config.d_model,
            config.n_heads,
            positional=positional,
            dropout=config.dropout,
            bias=config.bias,
            layer_index=layer_index,
            n_kv_heads=config.kv_heads,
            qkv_bias=config.bias if config.qkv_bias is None else config.qkv_bias,
        )
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(
        self, x: Tensor, *, cache: KVCache | None = None, need_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x: (b, s, d) -> (b, s, d); with ``need_weights`` also the attention weights (b, h, s, t)."""
        if need_weights:
            a, weights = self.attn(self.norm1(x), cache=cache, need_weights=True)
            x = x + a
            return x + self.mlp(self.norm2(x)), weights
        x = x + self.attn(self.norm1(x), cache=cache)
        return x + self.mlp(self.norm2(x))
