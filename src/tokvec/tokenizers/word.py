r"""Word tokenizer: words, single punctuation marks, whitespace runs, and CJK characters one by one.

The split is one documented regex, :data:`WORD_PATTERN`, tried left to right:

1. ``[CJK]``          one Chinese/Japanese ideograph or kana (these scripts do not put spaces between
                      words, and segmenting them needs a dictionary: see "segmenter" below);
2. ``[^\W CJK]+``     a run of word characters (letters, digits, ``_``) that are not CJK: ``hello``, ``x86_64``;
3. ``\s+``            a run of whitespace (kept as a token by default, so decoding is lossless);
4. ``[^\w\s]``        one punctuation mark or symbol: ``,`` ``，`` ``!`` ``😀``.

Every character matches exactly one branch, so ``"".join(tokens(s)) == s`` for any ``s``.

Plugging in a segmenter (e.g. jieba, pkuseg) for real Chinese words::

    import jieba
    tok = WordTokenizer.train(texts, segmenter=jieba.lcut)   # any callable str -> list[str]
    tok.save("word.json")
    tok = load_tokenizer("word.json", segmenter=jieba.lcut)  # functions are not saved; pass it again
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import TokvecValueError
from ..textstream import whitespace_cut
from ..vocab import DEFAULT_SPECIALS, Vocabulary
from .base import check_normalization, read_normalization, register_tokenizer
from .vocab_tokenizer import VocabTokenizer

# CJK ideographs (with extensions A..G and compatibility), kana, bopomofo, iteration marks.
CJK = (
    "\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
)
WORD_PATTERN = rf"[{CJK}]|[^\W{CJK}]+|\s+|[^\w\s]"
_WORD_RE = re.compile(WORD_PATTERN)
_CJK_CHAR = re.compile(rf"[{CJK}\u3000-\u303f\uff00-\uffef]")  # ideographs, kana, CJK and full-width punctuation
_NO_SPACE_BEFORE = set(",.!?;:%)]}\u2019\u201d")
_NO_SPACE_AFTER = set("([{\u2018\u201c")

Segmenter = Callable[[str], Sequence[str]]


@register_tokenizer("word")
class WordTokenizer(VocabTokenizer):
    """Splits on words and punctuation with :data:`WORD_PATTERN` (or a user ``segmenter``).

    ``keep_whitespace=True`` (default) keeps whitespace runs as tokens, so decoding is exact.
    With ``False`` they are dropped and ``decode`` puts one space between pieces, except before
    closing punctuation, after opening brackets and next to CJK text: the classic word-level
    vocabulary, smaller but lossy (newlines, double spaces and "a , b" spacing are not kept).
    """

    CJK = CJK  # the ideograph/kana class of WORD_PATTERN (the tokenizer.json export spells it out)

    def __init__(
        self,
        vocab: Vocabulary,
        *,
        normalization: str | None = None,
        keep_whitespace: bool = True,
        segmenter: Segmenter | None = None,
        segmenter_name: str | None = None,
    ) -> None:
        super().__init__(vocab, normalization=normalization)
        if segmenter is not None and not callable(segmenter):
            raise TokvecValueError(f"segmenter must be a callable str -> list[str], got {type(segmenter).__name__}")
        if segmenter_name and segmenter is None:
            raise TokvecValueError(
                f"this WordTokenizer was trained with the segmenter {segmenter_name!r}, which is not saved in "
                f"the file; pass it again: load_tokenizer(path, segmenter=...)"
            )
        self.keep_whitespace = bool(keep_whitespace)
        self.segmenter = segmenter
        self.segmenter_name = segmenter_name or (_name_of(segmenter) if segmenter else None)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        normalization: str | None = None,
        keep_whitespace: bool = True,
        segmenter: Segmenter | None = None,
    ) -> "WordTokenizer":
        """Build the word vocabulary of ``texts`` (most frequent first)."""
        probe = cls(
            Vocabulary([]),
            normalization=check_normalization(normalization),
            keep_whitespace=keep_whitespace,
            segmenter=segmenter,
        )
        vocab = cls._train_vocab(texts, probe.tokens, min_freq=min_freq, max_size=max_size, specials=specials)
        return cls(vocab, normalization=probe.normalization, keep_whitespace=keep_whitespace, segmenter=segmenter)

    @classmethod
    def from_word_vectors(
        cls,
        path,
        *,
        format: str = "auto",
        limit: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        normalization: str | None = None,
        keep_whitespace: bool = False,
        segmenter: Segmenter | None = None,
    ) -> "WordTokenizer":
        """The vocabulary of a GloVe / word2vec / fastText file (``specials`` first, then the file's
        words in file order, so the most frequent get the lowest ids). Only the words are read.

        ``keep_whitespace=False`` by default: vector files hold no whitespace tokens. ``limit`` keeps
        the first ``limit`` words. Pair it with :meth:`TokenEmbedding.from_word_vectors` for the rows.
        """
        from .word_vectors import read_word_vectors

        words = read_word_vectors(path, format=format, words_only=True, limit=limit).words
        vocab = Vocabulary(words, specials=specials)
        return cls(
            vocab,
            normalization=check_normalization(normalization),
            keep_whitespace=keep_whitespace,
            segmenter=segmenter,
        )

    def _split(self, text: str) -> list[str]:
        pieces = list(self.segmenter(text)) if self.segmenter else _WORD_RE.findall(text)
        if not self.keep_whitespace:
            pieces = [p for p in pieces if p and not p.isspace()]
        return pieces

    def safe_cut(self, text: str) -> int:
        """Just before the last space or newline that follows a non-space: WORD_PATTERN ends every
        piece at a whitespace run's start and begins the run there (normalization, if any, composes
        nothing with a space). A user segmenter promises nothing, so its files are encoded whole."""
        if self.segmenter is not None:
            return 0
        return whitespace_cut(text, lambda c: not c.isspace())

    def _join(self, pieces: list[str]) -> str:
        if self.keep_whitespace:
            return "".join(pieces)
        out: list[str] = []
        for piece in pieces:
            if out and _space_between(out[-1], piece):
                out.append(" ")
            out.append(piece)
        return "".join(out)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "keep_whitespace": self.keep_whitespace, "segmenter": self.segmenter_name}

    @classmethod
    def from_dict(
        cls, data: Mapping, *, source: str = "tokenizer data", segmenter: Segmenter | None = None, **options: Any
    ) -> "WordTokenizer":
        from .._schema import Doc

        doc = Doc(data, source)
        return cls(
            cls._vocab_from(data, source),
            normalization=read_normalization(doc),
            keep_whitespace=doc.bool("keep_whitespace", default=True),
            segmenter=segmenter,
            segmenter_name=doc.optional("segmenter", lambda k: doc.str(k, max_len=500)),
        )


def _space_between(left: str, right: str) -> bool:
    """Whether decode (without kept whitespace) puts a space between two pieces: yes between words,
    not before closing punctuation, not after opening brackets, never next to CJK text."""
    a, b = left[-1:], right[:1]
    if not a or not b or b in _NO_SPACE_BEFORE or a in _NO_SPACE_AFTER:
        return False
    return not (_CJK_CHAR.match(a) or _CJK_CHAR.match(b))


def _name_of(fn: Callable) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{module}.{name}" if module else name
