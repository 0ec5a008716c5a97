"""Pretrained word vectors: GloVe, word2vec (text and binary) and fastText ``.vec`` files.

Formats (``format=`` or detected from the first lines):

- ``"glove"``           ``word v1 ... vd`` per line, no header (Stanford GloVe);
- ``"word2vec"``        a header line ``n d``, then ``word v1 ... vd`` per line (word2vec ``-binary 0``,
                        and fastText's ``.vec``, which ends each line with a space);
- ``"word2vec-binary"`` the header ``n d\\n``, then per word: the word's UTF-8 bytes, a space, ``d``
                        little-endian float32 (4d bytes), an optional newline (word2vec ``-binary 1``).

Every file is untrusted: each line is checked (column count, numbers, duplicate words, the header's
counts, a truncated binary record) and an error names the file, the line (or record) and what was
expected. The table lands in one float32 tensor allocated once: text is read in blocks, each block's
numbers parsed by numpy's C reader straight into the table (no Python float per number, no list per
row), so memory stays near the table's own size (benchmarks/bench_word_vectors.py).

>>> wv = read_word_vectors("glove.6B.50d.txt")               # doctest: +SKIP
>>> wv.vectors.shape, wv.neighbors("frog", k=3)              # doctest: +SKIP
(torch.Size([400000, 50]), [('frogs', 0.83), ('toad', 0.80), ('monkey', 0.77)])
>>> wv.analogy("king", "man", "woman", k=1)                  # king - man + woman    # doctest: +SKIP
[('queen', 0.85)]
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import FormatError, TokvecValueError, UnknownTokenError

FORMATS = ("glove", "word2vec", "word2vec-binary")
BLOCK_BYTES = 4 << 20  # text read per block: the only memory beyond the table and the words
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 11, 12, 13, 32]] = True


@dataclass
class WordVectors:
    """Words and their vectors: ``vectors[i]`` is the vector of ``words[i]``. vectors: (n, d) float32."""

    words: list[str]
    vectors: Tensor
    path: str = ""
    format: str = ""
    _index: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _norms: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        """word -> row."""
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.words)}
        return self._index

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def vector(self, word: str) -> Tensor:
        """The vector of ``word``: (d,)."""
        return self.vectors[self._row(word)]

    def _row(self, word: str) -> int:
        try:
            return self.index[word]
        except KeyError:
            hint = f"; it has {word.lower()!r}" if word.lower() in self.index else ""
            raise UnknownTokenError(
                f"{word!r} is not among the {len(self.words):,} words of {self.path or 'these vectors'}{hint}"
            ) from None

    def _cosines(self, query: Tensor) -> Tensor:
        """cos(query, every row): query (d,) -> (n,). Rows of norm 0 score 0."""
        if self._norms is None:
            self._norms = torch.linalg.vector_norm(self.vectors, dim=1)
        q = query / torch.linalg.vector_norm(query).clamp_min(1e-12)
        return (self.vectors @ q) / self._norms.clamp_min(1e-12)

    def _top(self, scores: Tensor, k: int, exclude: set[int]) -> list[tuple[str, float]]:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise TokvecValueError(f"k must be an int >= 1, got {k!r}")
        take = min(k + len(exclude), len(self.words))
        values, rows = torch.topk(scores, take)
        found = [(self.words[r], float(v)) for v, r in zip(values.tolist(), rows.tolist()) if r not in exclude]
        return found[:k]

    def neighbors(self, word: str, *, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` words nearest to ``word`` by cosine similarity, best first (``word`` itself left out)."""
        row = self._row(word)
        return self._top(self._cosines(self.vectors[row]), k, {row})

    def analogy(self, a: str, b: str, c: str, *, k: int = 1) -> list[tuple[str, float]]:
        """Words nearest to ``a - b + c`` (3CosAdd on unit vectors, as word2vec's and gensim's
        ``most_similar(positive=[a, c], negative=[b])``), leaving out the three words:
        ``analogy("king", "man", "woman")`` -> queen (man is to king as woman is to queen)."""
        rows = [self._row(w) for w in (a, b, c)]
        unit = [self.vectors[r] / torch.linalg.vector_norm(self.vectors[r]).clamp_min(1e-12) for r in rows]
        return self._top(self._cosines(unit[0] - unit[1] + unit[2]), k, set(rows))


def read_word_vectors(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    words_only: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> WordVectors:
    """Read a GloVe / word2vec / fastText file into one float32 (n, d) tensor.

    ``format``: ``"auto"`` (detected) or one of :data:`FORMATS`. ``limit``: read the first ``limit``
    words only (files list frequent words first). ``words_only``: skip the numbers (a (n, 0) tensor;
    for building a tokenizer, much faster). ``progress(n)`` is called as ``n`` more bytes are read
    (the file's size in all). Raises :class:`~tokvec.errors.FormatError` naming the
    file, the line and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise TokvecValueError(f"no word-vector file at {path}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TokvecValueError(f"limit must be an int >= 1 or None, got {limit!r}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise TokvecValueError(f"unknown word-vector format {format!r}; choose auto or one of {', '.join(FORMATS)}")
    if fmt == "word2vec-binary":
        words, table = _read_binary(path, words_only=words_only, limit=limit, progress=progress)
    else:
        words, table = _read_text(path, header=fmt == "word2vec", words_only=words_only, limit=limit, progress=progress)
    _check_unique(words, path, first_line=2 if fmt != "glove" else 1, binary=fmt == "word2vec-binary")
    return WordVectors(words, table, str(path), fmt)


def vector_dim(path: str | os.PathLike, *, format: str = "auto") -> int:
    """The dimension of a word-vector file's vectors, from its first line (cheap: nothing else is read)."""
    path = Path(path)
    if not path.is_file():
        raise TokvecValueError(f"no word-vector file at {path}")
    fmt = detect_format(path) if format == "auto" else format
    with open(path, "rb") as f:
        first = f.readline()
    if fmt == "glove":
        if len(first.split()) < 2:
            raise FormatError(
                f"{path}, line 1: expected a word then its numbers, got {first[:80].decode('utf-8', 'replace')!r}"
            )
        return len(first.split()) - 1
    return _header(first, path)[1]


def detect_format(path: Path) -> str:
    """``glove`` (no header), ``word2vec`` (header, text) or ``word2vec-binary`` from the file's start."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.strip():
        raise FormatError(f"{path} is empty: no word vectors")
    first, _, rest = head.partition(b"\n")
    fields = first.split()
    if len(fields) == 2 and all(x.isdigit() for x in fields):
        second = rest.split(b"\n", 1)[0]
        try:
            second.decode("utf-8")
            text = len(second.split()) == int(fields[1]) + 1
        except UnicodeDecodeError:
            text = False
        return "word2vec" if text or int(fields[0]) == 0 else "word2vec-binary"
    return "glove"


def _header(line: bytes, path: Path) -> tuple[int, int]:
    fields = line.split()
    if len(fields) != 2 or not all(x.isdigit() for x in fields):
        raise FormatError(
            f"{path}, line 1: expected the header 'n_words dim' (two integers), "
            f"got {line[:80].decode('utf-8', 'replace')!r}"
        )
    n, d = int(fields[0]), int(fields[1])
    if d < 1:
        raise FormatError(f"{path}, line 1: the header says dim {d}; a vector needs dim >= 1")
    return n, d


def _blocks(f, first_offset: int):
    """(block, lines before it) over whole lines of the open file ``f`` from ``first_offset``."""
    f.seek(first_offset)
    carry = b""
    line = 0
    while True:
        chunk = f.read(BLOCK_BYTES)
        if not chunk:
            if carry.strip():
                yield carry, line
            return
        block = carry + chunk
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            carry = block
            continue
        carry = block[cut:]
        yield block[:cut], line
        line += block.count(b"\n", 0, cut)


def _read_text(
    path: Path, *, header: bool, words_only: bool, limit: int | None, progress: Callable[[int], None] | None
) -> tuple[list[str], Tensor]:
    with open(path, "rb") as f:
        first = f.readline()
        if header:
            n, d = _header(first, path)
            start, line_no = len(first), 2
        else:
            d = len(first.split()) - 1
            if d < 1:
                raise FormatError(
                    f"{path}, line 1: expected a word then its numbers, got {first[:80].decode('utf-8', 'replace')!r}"
                )
            n = _count_lines(f)
            start, line_no = 0, 1
        rows = n if limit is None else min(n, limit)
        table = torch.empty((rows, 0 if words_only else d), dtype=torch.float32)
        out = table.numpy()
        words: list[str] = []
        ended_at = 0  # line of the first blank line: only blank lines may follow it
        if progress is not None:
            progress(start)
        for block, before in _blocks(f, start):
            if progress is not None:
                progress(len(block))
            lines = block.split(b"\n")
            if lines and not lines[-1].strip():
                lines.pop()
            first_no = line_no + before
            blank = next((i for i, line in enumerate(lines) if not line.strip()), None) if not ended_at else 0
            if blank is not None:
                ended_at = ended_at or first_no + blank
                late = next((i for i, line in enumerate(lines) if line.strip() and first_no + i > ended_at), None)
                if late is not None:
                    raise FormatError(
                        f"{path}, line {ended_at}: an empty line among the vectors; expected "
                        f"'word v1 ... vd' on every line"
                    )
                lines = lines[: max(0, ended_at - first_no)]
            take = min(len(lines), rows - len(words))
            if take < len(lines) and limit is None:
                raise FormatError(
                    f"{path}, line {first_no + take}: more lines than the {n:,} words the "
                    f"header announces; fix the header or the file"
                )
            lines = lines[:take]
            _check_columns(block, lines, d, path, first_no)
            for i, raw in enumerate(lines):
                try:
                    words.append(raw.split(None, 1)[0].decode("utf-8"))
                except UnicodeDecodeError as e:
                    raise FormatError(
                        f"{path}, line {first_no + i}: the word is not UTF-8 (byte {e.start}); "
                        f"word-vector files are UTF-8 text"
                    ) from None
            if not words_only:
                _parse_numbers(lines, out[len(words) - take : len(words)], d, path, first_no)
            if len(words) == rows:
                break
    if len(words) < rows:
        raise FormatError(
            f"{path}: the header announces {n:,} words but the file holds {len(words):,} "
            f"(truncated?); fix the header or pass limit={len(words)}"
        )
    return words, table


def _count_lines(f) -> int:
    """Lines up to the last non-blank one: the number of words of a header-less (GloVe) file."""
    f.seek(0)
    newlines = 0
    while chunk := f.read(BLOCK_BYTES):
        newlines += chunk.count(b"\n")
    f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
    end = f.read()
    f.seek(0)
    return newlines - end[len(end.rstrip()) :].count(b"\n") + 1


def _check_columns(block: bytes, lines: list[bytes], d: int, path: Path, first_no: int) -> None:
    """Every line holds exactly 1 + d whitespace-separated fields: counted for the whole block at
    once (field starts per line, vectorised), a Python loop only to name the first bad line."""
    if not lines:
        return
    size = sum(map(len, lines)) + len(lines)
    raw = np.frombuffer(block, dtype=np.uint8, count=min(size, len(block)))
    if len(raw) < size:  # the last line had no newline
        raw = np.concatenate([raw, np.array([10], dtype=np.uint8)])
    space = _WHITESPACE[raw]
    starts = ~space
    starts[1:] &= space[:-1]  # a field starts where a non-space follows a space
    line_starts = np.concatenate([[0], np.flatnonzero(raw == 10)[:-1] + 1])
    per_line = np.add.reduceat(starts, line_starts, dtype=np.int32)
    bad = np.flatnonzero(per_line != d + 1)
    if len(bad):
        i = int(bad[0])
        found = len(lines[i].split())
        raise FormatError(
            f"{path}, line {first_no + i}: expected a word and {d} numbers ({d + 1} columns), "
            f"found {found} column(s)" + ("; a word with a space in it?" if found > d + 1 else "")
        )


def _parse_numbers(lines: list[bytes], out: np.ndarray, d: int, path: Path, first_no: int) -> None:
    """Parse columns 1..d of ``lines`` into ``out`` (len(lines), d) with numpy's C reader."""
    text = b"\n".join(lines).decode("latin-1")  # numbers are ASCII; words are skipped (usecols)
    try:
        out[:] = np.loadtxt(
            io.StringIO(text),
            dtype=np.float32,
            usecols=range(1, d + 1),
            comments=None,
            delimiter=None,
            quotechar=None,
            ndmin=2,
        )
    except ValueError:
        for i, line in enumerate(lines):
            for j, value in enumerate(line.split()[1:], 1):
                try:
                    float(value)
                except ValueError:
                    raise FormatError(
                        f"{path}, line {first_no + i}, column {j + 1}: expected a number, got "
                        f"{value[:40].decode('utf-8', 'replace')!r}"
                    ) from None
        raise
    if not np.isfinite(out).all():
        row, col = np.argwhere(~np.isfinite(out))[0]
        raise FormatError(
            f"{path}, line {first_no + int(row)}, column {int(col) + 2}: expected a finite number, got {out[row, col]}"
        )


def _read_binary(
    path: Path, *, words_only: bool, limit: int | None, progress: Callable[[int], None] | None
) -> tuple[list[str], Tensor]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        first = f.readline()
        n, d = _header(first, path)
        rows = n if limit is None else min(n, limit)
        record = 4 * d
        if size - len(first) < rows * (record + 2):
            raise FormatError(
                f"{path}: the header announces {n:,} words of dim {d} ({rows * (record + 2):,}+ "
                f"bytes) but only {size - len(first):,} bytes follow; the file is truncated"
            )
        table = torch.empty((rows, 0 if words_only else d), dtype=torch.float32)
        out = table.numpy()
        words: list[str] = []
        if progress is not None:
            progress(len(first))
        buf = b""
        pos = 0
        offset = len(first)  # file offset of buf[0]
        for i in range(rows):
            if len(buf) - pos < record + 1024:  # refill: a word + its record must be in the buffer
                more = f.read(BLOCK_BYTES)
                if progress is not None:
                    progress(len(more))
                buf = buf[pos:] + more
                offset += pos
                pos = 0
            while pos < len(buf) and buf[pos] == 10:  # the newline that may end the previous record
                pos += 1
            space = buf.find(b" ", pos, pos + 1024)
            if space < 0:
                what = "the file ends" if len(buf) - pos < 1024 else "no space within 1024 bytes"
                raise FormatError(
                    f"{path}, record {i + 1} (byte {offset + pos}): expected a word and a space, "
                    f"{what}; the file is truncated or not word2vec binary"
                )
            if len(buf) - space - 1 < record:
                raise FormatError(
                    f"{path}, record {i + 1} (byte {offset + pos}): expected {record} bytes of "
                    f"{d} float32 after the word, only {len(buf) - space - 1} remain; the file "
                    f"is truncated"
                )
            try:
                words.append(buf[pos:space].decode("utf-8"))
            except UnicodeDecodeError:
                raise FormatError(
                    f"{path}, record {i + 1} (byte {offset + pos}): the word is not UTF-8; is this "
                    f"a text file (format='word2vec')?"
                ) from None
            if not words_only:
                out[i] = np.frombuffer(buf, dtype="<f4", count=d, offset=space + 1)
            pos = space + 1 + record
    if not words_only and not np.isfinite(out).all():
        row = int(np.argwhere(~np.isfinite(out))[0][0])
        raise FormatError(
            f"{path}, record {row + 1} ({words[row]!r}): expected finite float32 numbers, found NaN or infinity"
        )
    return words, table


def _check_unique(words: list[str], path: Path, *, first_line: int, binary: bool) -> None:
    if len(set(words)) == len(words):
        return
    seen: dict[str, int] = {}
    unit = "record" if binary else "line"
    start = 1 if binary else first_line
    for i, w in enumerate(words):
        if w in seen:
            raise FormatError(
                f"{path}, {unit} {start + i}: the word {w!r} appears twice (first at {unit} "
                f"{start + seen[w]}); each word needs exactly one vector"
            )
        seen[w] = i
