"""Tokenizers: text <-> token ids. All share :class:`Tokenizer`; ``load_tokenizer`` reads any of them."""

from .base import Tokenizer, load_tokenizer, register_foreign_loader, register_named_tokenizer, register_tokenizer
from .bpe import BPETokenizer  # after base: registers "bpe", its file readers and tiktoken's names
from .build import BPE_SPECIALS, build_tokenizer  # after the kinds it builds
from .char import CharTokenizer
from .word import WORD_PATTERN, WordTokenizer

__all__ = [
    "Tokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "BPETokenizer",
    "WORD_PATTERN",
    "load_tokenizer",
    "build_tokenizer",
    "BPE_SPECIALS",
    "register_tokenizer",
    "register_foreign_loader",
    "register_named_tokenizer",
]
