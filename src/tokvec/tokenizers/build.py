"""The tokenizer a name stands for: ``char``, ``word``, ``bpe:N`` (trained on a corpus), one of
tiktoken's encodings (``cl100k_base``: from tiktoken's cache) or a saved file.

    >>> tok = build_tokenizer("bpe:512", corpus="novel.txt")      # trained, streamed from the files
    >>> tok = build_tokenizer("runs/novel/tokenizer.json")         # loaded
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..corpus import corpus_files, read_corpus
from ..errors import TokvecValueError
from .base import load_tokenizer
from .bpe import BPETokenizer
from .char import CharTokenizer
from .tiktoken_names import ENCODING_NAMES
from .word import WordTokenizer

BPE_SPECIALS = ("<|endoftext|>",)


def smallest_vocab_size(spec: object) -> int:
    """The fewest ids the tokenizer ``spec`` can give, known before it is built: N for ``bpe:N``, else 1
    (a char or word vocabulary comes from the text; a file's, from the file). A model's shape and size
    can then be checked before a tokenizer is trained or a corpus read, never refusing one that fits.

    >>> smallest_vocab_size("bpe:4096"), smallest_vocab_size("char")
    (4096, 1)
    """
    if isinstance(spec, str) and spec.startswith("bpe:") and spec[4:].isdigit() and len(spec) < 20:
        return int(spec[4:])
    return 1


def names_a_file(spec: object) -> bool:
    """A tokenizer spec that may name a file: not ``char``, ``word`` or ``bpe:N`` (the kinds trained)."""
    return isinstance(spec, str) and spec not in ("char", "word") and not spec.startswith("bpe:")


def build_tokenizer(
    spec: str, text: str | Sequence[str] | None = None, *, corpus: str | None = None, encoding: str = "utf-8"
):
    """The tokenizer ``spec`` names, trained when it is a kind: ``char`` and ``word`` on ``text``
    (one string or several; or the corpus read whole), ``bpe:N`` (byte-level BPE of N ids) streamed
    from the corpus files (or on ``text`` when given)."""
    texts = None if text is None else [text] if isinstance(text, str) else list(text)
    if spec in ("char", "word"):
        texts = [read_corpus(corpus, encoding)] if texts is None else texts
        return (CharTokenizer if spec == "char" else WordTokenizer).train(texts)
    if spec.startswith("bpe:"):
        size = spec[4:]
        if not size.isdigit():
            raise TokvecValueError(f"tokenizer {spec!r}: write bpe:N with N the vocabulary size, e.g. bpe:8192")
        if texts is not None:
            return BPETokenizer.train_from_texts(texts, vocab_size=int(size), special_tokens=BPE_SPECIALS)
        return BPETokenizer.train(
            corpus_files(corpus), vocab_size=int(size), special_tokens=BPE_SPECIALS, encoding=encoding
        )
    if Path(spec).is_file() or spec in ENCODING_NAMES:
        return load_tokenizer(spec)
    raise TokvecValueError(
        f"unknown tokenizer {spec!r}; use char, word, bpe:N (N = vocabulary size), "
        f"one of tiktoken's encodings ({', '.join(ENCODING_NAMES)}) "
        f"or the path of a saved tokenizer file"
    )
