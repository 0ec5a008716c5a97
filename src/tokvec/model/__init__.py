"""The Transformer: attention (with the positional scheme injected and a KV cache), blocks, models."""

from .attention import CausalSelfAttention, KVCache, causal_mask

__all__ = ["CausalSelfAttention", "KVCache", "causal_mask"]
