"""Read a corpus of any size as a stream of text chunks, each ending where no BPE piece can straddle.

Used by BPE training and by the corpus -> token file path: files are read in blocks of bytes,
decoded incrementally (a decode error names the file and its byte offset), and cut only just after
a letter that is followed by whitespace. None of the named pre-tokenisation patterns (gpt2, cl100k,
o200k) joins a letter with the whitespace after it, so encoding the chunks one by one gives the same
ids as encoding each file whole.
"""

from __future__ import annotations

import codecs
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


def safe_cut(text: str) -> int:
    """Index just after the last letter that is followed by whitespace (0 if none).

    >>> safe_cut("one two thr")
    7
    """
    best = 0
    for ws in (" ", "\n"):
        i = len(text)
        while True:
            i = text.rfind(ws, 0, i)
            if i <= best:
                break
            if text[i - 1].isalpha():
                best = i
                break
    return best


def iter_file_chunks(path: Path, *, encoding: str = "utf-8", progress: Callable[[int], None] | None = None,
                     block_bytes: int | None = None) -> Iterator[str]:
    """Chunks of one file's text (about ``block_bytes``, default BLOCK_BYTES, each); their
    concatenation is the whole file."""
    block_bytes = block_bytes or BLOCK_BYTES
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    except LookupError:
        raise TokvecValueError(f"unknown text encoding {encoding!r}; try utf-8, gb18030, latin-1") from None
    carry = ""
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
                if carry + text:
                    yield carry + text
                return
            carry += text
            cut = safe_cut(carry)
            if cut == 0 and len(carry) < MAX_CARRY_CHARS:
                continue  # no safe cut yet: read on (bounded: a pathological file is cut anyway)
            if cut == 0:
                cut = len(carry)
            yield carry[:cut]
            carry = carry[cut:]


def iter_corpus_chunks(files: Sequence[Path], *, encoding: str = "utf-8", progress: Callable[[int], None] | None = None,
                       block_bytes: int | None = None) -> Iterator[tuple[Path, str]]:
    """(file, chunk) for every chunk of every file, in order."""
    for path in files:
        for chunk in iter_file_chunks(path, encoding=encoding, progress=progress, block_bytes=block_bytes):
            yield path, chunk
