"""The Transformer: attention (with the positional scheme injected and a KV cache), blocks, models."""

from .attention import CausalSelfAttention, KVCache, causal_mask
from .block import MLP, Block
from .classifier import SequenceClassifier
from .config import PRESETS, ModelConfig
from .gpt import GPT

__all__ = [
    "CausalSelfAttention",
    "KVCache",
    "causal_mask",
    "Block",
    "MLP",
    "ModelConfig",
    "PRESETS",
    "GPT",
    "SequenceClassifier",
]
