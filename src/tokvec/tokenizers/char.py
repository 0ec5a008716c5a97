"""Character tokenizer: one token per Unicode code point (Chinese, emoji, anything).

>>> tok = CharTokenizer.train(["你好嗎"])
>>> tok.encode("你好好嗎嗎")        # specials take 0..3; 你=4 好=5 嗎=6
[4, 5, 5, 6, 6]
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..vocab import DEFAULT_SPECIALS
from .base import check_normalization, normalize, register_tokenizer
from .vocab_tokenizer import VocabTokenizer


@register_tokenizer("char")
class CharTokenizer(VocabTokenizer):
    """Splits text into code points. ``normalization`` ("NFC", "NFKC", ...) is applied first.

    Note: "é" can be one code point (NFC) or two (NFD); pick a normalization when your text mixes
    them, or the two spellings get different ids. Without one, ``decode(encode(s)) == s`` for every
    ``s`` whose characters are all in the vocabulary.
    """

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        normalization: str | None = None,
        order: str = "frequency",
    ) -> "CharTokenizer":
        """Build the character vocabulary of ``texts`` (most frequent first, or ``order="first"``:
        first appearance; with ``specials=()`` that gives the tutorials' 你=0 好=1 嗎=2 for "你好好嗎嗎")."""
        norm = check_normalization(normalization)
        vocab = cls._train_vocab(
            texts, lambda t: normalize(t, norm), min_freq=min_freq, max_size=max_size, specials=specials, order=order
        )
        return cls(vocab, normalization=norm)

    def _split(self, text: str) -> list[str]:
        return list(text)

    def _join(self, pieces: list[str]) -> str:
        return "".join(pieces)
