"""Tokenizers: text <-> token ids. All share :class:`Tokenizer`; ``load_tokenizer`` reads any of them."""

from .base import Tokenizer, load_tokenizer, register_foreign_loader, register_tokenizer
from .char import CharTokenizer
from .word import WORD_PATTERN, WordTokenizer
from .bpe import BPETokenizer  # after base: registers the "bpe" kind and the .tiktoken / tokenizer.json readers

__all__ = [
    "Tokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "BPETokenizer",
    "WORD_PATTERN",
    "load_tokenizer",
    "register_tokenizer",
    "register_foreign_loader",
]
