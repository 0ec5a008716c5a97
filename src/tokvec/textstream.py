"""Read a corpus of any size as a stream of text chunks, each ending where no token can straddle.

Used by BPE training and by the corpus -> token file path: files are read in blocks of bytes,
decoded incrementally (a decode error names the file and its byte offset), and cut only where the
tokenizer says no token spans the cut (``Tokenizer.safe_cut``; by default :func:`safe_cut`, just
after a letter that is followed by whitespace: none of the named pre-tokenisation patterns -- gpt2,
cl100k, o200k -- joins a letter with the whitespace after it). Encoding the chunks one by one then
gives the same ids as encoding each file whole.
"""

from __future__ import annotations

import codecs
import functools
import glob
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from .errors import TokvecValueError

BLOCK_BYTES = 1 << 20  # read size; a chunk is about this many bytes of text
MAX_CARRY_CHARS = 16 << 20  # a chunk grows past BLOCK_BYTES until a safe cut turns up, up to this


def expand_corpus(corpus: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Files named by ``corpus``: paths, directories (every file below, sorted) and glob patterns.

    >>> expand_corpus(["data/*.txt"])          # doctest: +SKIP
    [PosixPath('data/a.txt'), PosixPath('data/b.txt')]
    """
    items = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    if not items:
        raise TokvecValueError("the corpus is empty: no files given; pass file paths, directories or globs")
    files: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TokvecValueError(f"corpus entries must be paths or glob patterns, got {type(item).__name__}")
        p = Path(item)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            if not found:
                raise TokvecValueError(f"corpus directory {p} holds no files")
            files.extend(found)
        elif glob.has_magic(str(item)):
            found = sorted(Path(f) for f in glob.glob(str(item), recursive=True) if Path(f).is_file())
            if not found:
                raise TokvecValueError(f"corpus pattern {str(item)!r} matches no files")
            files.extend(found)
        else:
            raise TokvecValueError(f"corpus file {p} does not exist (and is not a glob pattern)")
    return files


def corpus_bytes(files: Sequence[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def whitespace_cut(text: str, before: Callable[[str], bool]) -> int:
    """Index of the last space or newline of ``text`` whose previous character passes ``before``
    (0 if none): the cut sits just before that whitespace."""
    best = 0
    for ws in (" ", "\n"):
        i = len(text)
        while True:
            i = text.rfind(ws, 0, i)
            if i <= best:
                break
            if before(text[i - 1]):
                best = i
                break
    return best


def safe_cut(text: str) -> int:
    """Index just after the last letter that is followed by whitespace (0 if none).

    >>> safe_cut("one two thr")
    7
    """
    return whitespace_cut(text, str.isalpha)


MAX_TRAIN_TEXT = 8192  # characters per text handed to a BPE trainer: bounds every pre-tokenisation piece


# Just after a letter followed by punctuation or a symbol (not a letter, mark, digit, apostrophe or
# whitespace): the named patterns end a letter run there and start the next piece with that character.
@functools.cache
def _letter_then_symbol():
    import regex  # for \p{..} classes

    return regex.compile(r"(?r)\p{L}(?=[^\p{L}\p{M}\p{N}\s'\u2019])")


def letter_symbol_cut(text: str) -> int:
    """Index just after the last letter that is followed by punctuation or a symbol (0 if none).

    >>> letter_symbol_cut("秦川雄帝宅，函谷壯皇居。")
    11
    """
    m = _letter_then_symbol().search(text)
    return m.end() if m else 0


def bounded_texts(text: str, max_chars: int | None = None) -> Iterator[str]:
    """``text`` in parts of at most ``max_chars`` (default MAX_TRAIN_TEXT) characters, whose
    concatenation is ``text``, for BPE training: a trainer never sees a pre-tokenisation piece longer.

    Each part ends at the last :func:`safe_cut` (letter, then whitespace) in its window; failing
    that, at the last :func:`letter_symbol_cut`; both are piece boundaries for the named patterns, so
    training on the parts counts exactly the pairs of the whole. Only a window with neither (e.g.
    ``max_chars`` letters in a row) is cut at ``max_chars``: the piece it splits loses the one pair
    that spans the cut. Encoding never sees these parts, so ids stay those of the whole text.

    >>> list(bounded_texts("ab cd efghij", 5))
    ['ab cd', ' efgh', 'ij']
    """
    max_chars = max_chars or MAX_TRAIN_TEXT
    start, n = 0, len(text)
    while n - start > max_chars:
        window = text[start : start + max_chars + 1]  # a cut may fall just after the window's last char
        at = safe_cut(window)
        if at == 0 or at > max_chars:
            at = letter_symbol_cut(window[: max_chars + 1])
        if at == 0 or at > max_chars:
            at = max_chars
        yield text[start : start + at]
        start += at
    if start < n:
        yield text[start:]


Cut = Callable[[str], int]  # text -> the last index where a chunk may end (0: nowhere in this text)
LONG_CARRY_CHARS = 1 << 20  # with long_carry: a stretch without a cut is handed on in parts of this size


class Unfinished(str):
    """A part of a stretch of text with no safe cut: the next chunk of the same file continues it
    (the stretch ends with the first chunk that is a plain ``str``)."""


_TAIL = 256  # characters of the carry re-examined with each new block (a cut looks a little back)


def iter_file_chunks(
    path: Path,
    *,
    encoding: str = "utf-8",
    progress: Callable[[int], None] | None = None,
    block_bytes: int | None = None,
    cut: Cut | None = None,
    max_carry: int | None = MAX_CARRY_CHARS,
    long_carry: int | None = None,
) -> Iterator[str]:
    """Chunks of one file's text (about ``block_bytes``, default BLOCK_BYTES, each); their
    concatenation is the whole file.

    ``cut(text)`` gives the last index where a chunk may end (default :func:`safe_cut`); a tokenizer
    passes its own (``Tokenizer.safe_cut``) so that encoding the chunks equals encoding the file.
    Without a cut the text is carried on: up to ``max_carry`` characters, then cut anyway (right
    for counting BPE pairs in training), or, with ``max_carry=None``, to the end of the file (the
    exact path: memory then grows with the longest stretch that has no safe cut). With
    ``long_carry`` too, such a stretch is handed on in :class:`Unfinished` parts of about
    ``long_carry`` characters, followed by its last part, a plain ``str`` that ends at a cut (or at
    the end of the file): a consumer that can encode a stretch in parts
    (``BPETokenizer.encode_stretch``) then holds no more than that.
    """
    block_bytes = block_bytes or BLOCK_BYTES
    cut = cut or safe_cut
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise TokvecValueError(f"unknown text encoding {encoding!r}; try utf-8, gb18030, latin-1") from None
    parts: list[str] = []  # the carry, as blocks: no quadratic re-joining while no cut turns up
    carried = 0
    tail = ""  # the end of the text before the new block (a cut may need to see back)
    unfinished = False  # the last chunk handed on was Unfinished
    offset = 0  # bytes of the file handed to the decoder so far
    with open(path, "rb") as f:
        while True:
            block = f.read(block_bytes)
            final = not block
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as e:
                raise TokvecValueError(
                    f"{path} is not valid {encoding} at byte offset {offset - pending + e.start}; "
                    f"pass the file's encoding (encoding= / --encoding, e.g. gb18030 for a GBK Chinese file)"
                ) from None
            offset += len(block)
            if progress is not None and block:
                progress(len(block))
            if final:
                if carried or unfinished:  # a stretch handed on in parts ends with a plain str
                    yield "".join(parts)
                return
            if not text:
                continue
            # look for a cut in the new text and the end of the carry (a cut may need to see back)
            probe = tail + text
            at = cut(probe)
            split = carried - len(tail) + at  # the same index in the carry joined with the new text
            tail = probe[-_TAIL:]
            parts.append(text)
            carried += len(text)
            unfinished = False
            if at > 0 and split > 0:
                whole = "".join(parts)
                yield whole[:split]
                parts, carried = [whole[split:]], len(whole) - split
                if not carried:
                    parts = []
            elif max_carry is not None and carried >= max_carry:
                yield "".join(parts)
                parts, carried = [], 0
            elif long_carry is not None and carried >= long_carry:
                yield Unfinished("".join(parts))
                parts, carried, unfinished = [], 0, True


def iter_corpus_chunks(
    files: Sequence[Path],
    *,
    encoding: str = "utf-8",
    progress: Callable[[int], None] | None = None,
    block_bytes: int | None = None,
    cut: Cut | None = None,
    max_carry: int | None = MAX_CARRY_CHARS,
    long_carry: int | None = None,
) -> Iterator[tuple[Path, str]]:
    """(file, chunk) for every chunk of every file, in order (see :func:`iter_file_chunks`)."""
    for path in files:
        for chunk in iter_file_chunks(
            path,
            encoding=encoding,
            progress=progress,
            block_bytes=block_bytes,
            cut=cut,
            max_carry=max_carry,
            long_carry=long_carry,
        ):
            yield path, chunk
