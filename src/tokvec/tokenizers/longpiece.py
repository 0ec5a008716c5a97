"""Encode a long stretch of text that has no safe cut, in bounded memory, to the ids of encoding it whole.

A token file cuts a corpus only where no token can span the cut (``BPETokenizer.safe_cut``). Text
with no such cut for megabytes -- Chinese with neither spaces nor punctuation, ``"abcabc..."`` -- is
mostly one pre-tokenisation piece, and tiktoken holds ~16 bytes per byte of a piece while it merges
it (1-2 GB for 50 MB). Two facts about BPE (github/rust-gems, crate ``bpe``, README "Corollary II"
and "Corollary III") let such a piece be encoded in windows of bytes instead:

- any run of consecutive tokens of a piece's encoding is the encoding of its own bytes;
- two encodings, each the encoding of its own bytes, that hold the same token at the same byte
  offset join there into the encoding of the bytes of both.

So the piece is encoded window by window (tiktoken's BPE on bytes, no regex): the next window starts
``overlap`` bytes before the end of the last one, the two are joined at the last token they share
(same id, same offset, at a character boundary), and everything before the join is final. Joined to
the end of the piece, the chain is the piece's encoding (there is only one). If two windows share
no token even with the overlap widened to the whole last window, the stretch cannot be encoded this
way and :class:`LongPieceError` says so; no token file is written then (in practice BPE
vocabularies settle within a few tokens).

Which runs are one piece depends on the pattern: a run of letters for gpt2 and cl100k (``\\p{L}++``),
of lowercase / other letters and marks for o200k (its letter piece ends at an uppercase letter). A
stretch with no such run (digits for gpt2, symbols, whitespace) and a custom pattern are encoded
whole, as before.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator

from ..errors import TokvecValueError

WINDOW_BYTES = 1 << 18  # bytes of a long piece handed to tiktoken at once (~4 MB of merge state)
OVERLAP_BYTES = 1 << 12  # bytes two windows share; widened when they share no token
MIN_RUN_CHARS = 1 << 12  # a stretch switches to windows once it ends with a run this long

# characters that extend a letter piece until the run ends, per named pattern
_RUN_CLASS = {"gpt2": r"\p{L}", "cl100k": r"\p{L}", "o200k": r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"}


class LongPieceError(TokvecValueError):
    """Two windows of a long piece share no token, so the piece cannot be encoded in bounded memory."""


@functools.cache
def _run_regexes(pattern: str):
    import regex

    run = _RUN_CLASS[pattern]
    body = run[1:-1] if run.startswith("[") else run
    return regex.compile(f"[^{body}]"), regex.compile(f"(?r)[^{body}]")


class PieceWindows:
    """One long pre-tokenisation piece, fed in parts of bytes; ``feed`` returns the ids no later byte
    can change, ``finish`` the bytes not yet final and a valid encoding of their start.

    ``encode_piece(bytes) -> list[int]``: BPE on one piece (tiktoken's ``_encode_single_piece``);
    ``token_len[rank]``: the byte length of each token. ``margin``: bytes at the end of the fed text
    where no join is made (room for a special token or a suffix the pattern adds after the run).
    ``start``: a valid encoding of the first bytes to be fed (a piece taken up again after
    :meth:`finish`, the ids it returned).
    """

    def __init__(
        self,
        encode_piece: Callable[[bytes], list[int]],
        token_len: Any,
        *,
        window: int = 0,
        overlap: int = 0,
        margin: int = 0,
        start: Any = (),
    ) -> None:
        self.window = window or WINDOW_BYTES
        self.overlap = overlap or OVERLAP_BYTES
        self.margin = margin
        if not self.margin < self.overlap < self.window:
            raise TokvecValueError(
                f"window {self.window} > overlap {self.overlap} > margin {self.margin} bytes is needed "
                f"(the overlap must hold the longest token and special token); raise the window"
            )
        self.encode_piece = encode_piece
        self.token_len = token_len
        self.data = bytearray()  # bytes of the piece from the last join on
        self.cur: Any = start  # the encoding of data[: self.end] (uint32 array)
        self.end = int(token_len[start].sum()) if len(start) else 0
        self.offset = 0  # bytes of the piece before data (for errors)

    def feed(self, data: bytes) -> Iterator[Any]:
        """Take the next bytes of the piece; yield the ids (uint32 arrays) that became final."""
        self.data += data
        step = self.window - self.overlap
        while len(self.data) >= (self.end + step if self.end else self.window):
            final = self._step()
            if len(final):
                yield final

    def finish(self) -> tuple[bytes, Any]:
        """(bytes not yet final, starting at a character boundary; the encoding of their first bytes)."""
        return bytes(self.data), self.cur

    def _encode(self, start: int, stop: int):
        import numpy as np

        ids = np.array(self.encode_piece(bytes(self.data[start:stop])), dtype=np.uint32)
        return ids, start + _offsets(ids, self.token_len)

    def _step(self):
        import numpy as np

        if not self.end:
            self.cur, _ = self._encode(0, self.window)
            self.end = self.window
            return self.cur[:0]
        stop = self.end + self.window - self.overlap
        cur = self.cur
        cur_at = _offsets(cur, self.token_len)
        overlap = self.overlap
        while True:
            start = max(0, self.end - overlap)
            nxt, at = self._encode(start, stop)
            shared = _shared_offsets(cur, cur_at, nxt, at)
            # a join starts a character (the bytes after it stay text) and leaves `margin` bytes after it
            ok = [y for y in shared.tolist() if 0 < y < self.end - self.margin and (self.data[y] & 0xC0) != 0x80]
            if ok:
                break
            if start == 0:
                raise LongPieceError(
                    f"a pre-tokenisation piece of more than {self.offset + len(self.data)} bytes has no token "
                    f"that two overlapping windows of {self.window} bytes agree on, so it cannot be encoded "
                    f"in bounded memory; encode it with a larger window (window_bytes=) or split the text"
                )
            overlap *= 2
        y = max(ok)
        final = cur[: int(np.searchsorted(cur_at, y))]
        del self.data[:y]
        self.offset += y
        self.cur = nxt[int(np.searchsorted(at, y)) :]
        self.end = stop - y
        return final


def _offsets(ids: Any, token_len: Any) -> Any:
    """Byte offset of each token of ``ids`` from the start of the first (int64)."""
    import numpy as np

    return np.concatenate(([0], np.cumsum(token_len[ids])[:-1]))


def _shared_offsets(a: Any, a_at: Any, b: Any, b_at: Any) -> Any:
    """The offsets, ascending, where encodings ``a`` and ``b`` (token offsets ``a_at``, ``b_at``, on one
    scale) hold the same token: where they may be joined (module docstring)."""
    import numpy as np

    return np.intersect1d(a_at * (1 << 32) + a, b_at * (1 << 32) + b, assume_unique=True) >> 32


def stitch(pending: Any, ids: Any, token_len: Any) -> Any:
    """``pending`` (a valid encoding of the first bytes of a text) joined with ``ids`` (the text's
    encoding, whose first piece holds those bytes) at a token both have at the same offset."""
    import numpy as np

    ids = np.asarray(ids)
    if not len(pending):
        return ids
    pend = np.asarray(pending, dtype=np.int64)
    p_at = _offsets(pend, token_len)
    covered = int(token_len[pend].sum())
    head = ids[:covered].astype(np.int64)  # the ids of the pending bytes (each token is >= 1 byte)
    special = np.flatnonzero(head >= len(token_len))
    head = head[: special[0]] if len(special) else head  # a special token starts after the piece
    at = _offsets(head, token_len)
    shared = _shared_offsets(pend, p_at, head, at)
    if not len(shared):
        raise LongPieceError(
            f"the end of a long pre-tokenisation piece encodes differently from its windows "
            f"(no shared token in its last {covered} bytes); encode it with a larger "
            f"window (window_bytes=) or split the text"
        )
    y = int(shared.max())
    i, j = int(np.searchsorted(p_at, y)), int(np.searchsorted(at, y))
    return np.concatenate((np.asarray(pending[:i], dtype=ids.dtype), ids[j:]))


def encode_stretch(
    tok: Any,
    parts: Iterable[str],
    encode: Callable[[str], Any],
    *,
    window: int = 0,
    overlap: int = 0,
) -> Iterator[Any]:
    """Ids of ``"".join(parts)`` (text that starts where a chunk may start), in pieces, holding about
    ``window`` bytes of a long run at once; ``encode(text)`` is the tokenizer's whole-text encoder.

    The text is gathered until it ends with a run of :data:`MIN_RUN_CHARS` characters that the
    pattern keeps in one piece; the text before that piece is encoded whole, the piece in windows
    (:class:`PieceWindows`) until the run ends, and what follows is gathered again. Without such a
    run (or with a custom pattern) the text is gathered to its end and encoded whole.
    """
    import regex

    if tok.pattern not in _RUN_CLASS:
        yield encode("".join(parts))
        return
    non_run, last_non_run = _run_regexes(tok.pattern)
    specials = list(tok.special_tokens)
    if any(not non_run.search(s) for s in specials):  # a special token inside a run would cut it
        yield encode("".join(parts))
        return
    longest_special = max((len(s.encode()) for s in specials), default=0)
    token_len = tok._token_lengths()
    if token_len is None:  # ranks too sparse to index
        yield encode("".join(parts))
        return
    window = window or WINDOW_BYTES
    overlap = overlap or max(min(OVERLAP_BYTES, window // 4), 4 * (int(token_len.max()) + longest_special))
    margin = overlap // 2
    piece_re = regex.compile(tok.pat_str)
    buf: list[str] = []  # text not encoded yet; the pattern's pieces from its start are the whole's
    pending: Any = ()  # a valid encoding of buf's first bytes, to stitch to encode(buf)
    piece: PieceWindows | None = None
    for part in parts:
        if piece is not None:
            m = non_run.search(part)
            j = m.start() if m else len(part)
            yield from piece.feed(part[:j].encode("utf-8"))
            if m is None:
                continue
            tail, pending = piece.finish()
            piece = None
            buf, part = [tail.decode("utf-8")], part[j:]
        buf.append(part)
        m = last_non_run.search(part)
        if m is not None and len(part) - m.end() < MIN_RUN_CHARS:
            continue
        text = "".join(buf)
        m = last_non_run.search(text)
        run = m.end() if m else 0  # the run that ends the text starts here
        if len(text) - run < MIN_RUN_CHARS:
            buf = [text]
            continue
        scan = text[: run + 64]
        start = None
        for start_m in piece_re.finditer(scan):
            start = start_m
        if start is None or start.end() != len(scan) or start.start() > len(scan) - 32:
            buf = [text]
            continue
        s = start.start()
        if _special_overlaps(text, s, max(s, run) + longest_special, specials):  # tiktoken would cut there
            buf = [text]
            continue
        if s or not len(pending):
            yield stitch(pending, encode(text[:s]), token_len)
            pending = ()
        # else the piece that ended the last run goes on (o200k: "的的Aab" is one piece): take it up again
        piece = PieceWindows(
            tok._enc._encode_single_piece, token_len, window=window, overlap=overlap, margin=margin, start=pending
        )
        pending = ()
        buf = []
        yield from piece.feed(text[s:].encode("utf-8"))
    if piece is not None:
        tail, pending = piece.finish()
        buf = [tail.decode("utf-8")]
    yield stitch(pending, encode("".join(buf)), token_len)


def _special_overlaps(text: str, lo: int, hi: int, specials: list[str]) -> bool:
    """Whether an occurrence of a special token in ``text`` overlaps ``[lo, hi)``."""
    for sp in specials:
        i = text.find(sp, max(0, lo - len(sp) + 1), hi + len(sp) - 1)
        if i >= 0:
            return True
    return False
