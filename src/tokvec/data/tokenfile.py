"""Corpus -> token file: a flat ``.bin`` of token ids (uint16 or uint32) plus a JSON sidecar.

    ids.bin        count ids, native little-endian, no header (np.memmap reads it directly)
    ids.bin.json   {"format": "tokvec.tokens", "version": 1, "dtype": "uint16", "count": ...,
                    "tokenizer": <fingerprint>, "vocab_size": ..., "blake2b": ..., ...}

uint16 holds ids up to 65535, so it is used only when ``vocab_size <= 65536``; anything larger gets
uint32 (nanoGPT's fixed uint16 silently wraps ids above 65535). The corpus is streamed in ~1 MB
chunks encoded on a thread pool (tiktoken releases the GIL, so both cores work) with a bounded
number of chunks in flight: memory does not grow with the corpus. The ``.bin`` is written under a
temporary name and renamed when complete, and the sidecar is written last: an interrupted run leaves
no ``.bin`` with a sidecar that vouches for it.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .. import textstream
from .._io import Writeback, atomic_open, check_output, read_json, write_json, write_target
from ..errors import FormatError, OutputPathError, TokvecError, TokvecValueError
from ..textstream import Unfinished, expand_corpus, iter_corpus_chunks

FORMAT = "tokvec.tokens"
VERSION = 1
DTYPES = ("uint16", "uint32")
IN_FLIGHT_CHARS = 8 << 20  # text handed to the encoding threads at once (~8 MB, ~8 chunks)


def sidecar_path(path: str | os.PathLike) -> Path:
    """``ids.bin`` -> ``ids.bin.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def token_dtype(vocab_size: int) -> str:
    """The smallest dtype that holds every id below ``vocab_size``: uint16 up to 65536 ids, else uint32."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def _encoder(tokenizer: Any, allowed_special: Any) -> Callable[[str], Any]:
    import numpy as np

    if hasattr(tokenizer, "encode_to_numpy"):  # BPE: no Python list in between
        return lambda text: tokenizer.encode_to_numpy(text, allowed_special=allowed_special)
    return lambda text: np.asarray(tokenizer.encode(text), dtype=np.int64)


class _stretch:
    """The parts of a stretch with no safe cut: ``first``, then chunks pulled from ``chunks`` up to
    and including the first that is not :class:`Unfinished` (the rest of ``chunks`` is untouched)."""

    def __init__(self, first: str, chunks: Iterator[tuple[Path, str]]) -> None:
        self.first, self.chunks, self.chars = first, chunks, 0

    def __iter__(self) -> Iterator[str]:
        text = self.first
        while True:
            self.chars += len(text)
            yield text
            if not isinstance(text, Unfinished):
                return
            _, text = next(self.chunks)


def write_token_file(
    tokenizer: Any,
    corpus: str | os.PathLike | Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    encoding: str = "utf-8",
    allowed_special: Any = frozenset(),
    eot: str | None = None,
    num_threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Encode every file of ``corpus`` (paths, directories, globs) into the token file ``out``.

    ``eot``: a special token appended after each file (e.g. ``"<|endoftext|>"``), so a model sees
    where documents end. ``progress(n)`` is called with corpus bytes read. Returns the sidecar dict.
    """
    import numpy as np

    files = expand_corpus(corpus)
    out = Path(out)
    if write_target(out)[0] != "replace":
        raise OutputPathError(
            f"{out} is not a regular file (a device, a FIFO, /dev/stdout); a token file needs "
            f"its sidecar {sidecar_path(out).name} beside it, so give a file path"
        )
    for target in (out, sidecar_path(out)):
        check_output(target, files)
    dtype = token_dtype(tokenizer.vocab_size)
    eot_ids: list[int] = []
    if eot is not None:
        specials = getattr(tokenizer, "special_tokens", {}) or {}
        if eot not in specials:
            raise TokvecValueError(
                f"eot {eot!r} is not a special token of this tokenizer "
                f"(it has {sorted(specials)!r}); train it with special_tokens=[{eot!r}]"
            )
        eot_ids = [specials[eot]]
    encode = _encoder(tokenizer, allowed_special)
    if hasattr(tokenizer, "encode_stretch"):

        def encode_stretch(parts):
            return tokenizer.encode_stretch(parts, allowed_special=allowed_special)
    else:

        def encode_stretch(parts):
            return [encode("".join(parts))]

    from .._checks import check_threads

    check_threads("num_threads", num_threads)
    threads = max(1, num_threads or os.cpu_count() or 1)
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    n_bytes = sum(f.stat().st_size for f in files)

    def job(path: Path, text: str, offset: int):
        try:
            return path, encode(text)
        except TokvecError as e:  # name the file; "character N" counts from this chunk's start
            where = f"{path}" if offset == 0 else f"{path} (chunk starting at character {offset})"
            raise type(e)(f"{where}: {e}") from None

    sidecar = sidecar_path(out)
    with atomic_open(out, "wb") as f, ThreadPoolExecutor(threads) as pool:
        writeback = Writeback(f)  # the disk starts on the ids while the rest are encoded
        pending: deque = deque()
        last_file: Path | None = None

        in_flight = {"chars": 0}

        def drain(limit: int) -> None:
            # bounded both ways: chunks in flight and their text (a huge unbroken chunk runs alone)
            while len(pending) > limit or (pending and in_flight["chars"] > IN_FLIGHT_CHARS):
                future, n_chars = pending.popleft()
                path, ids = future.result()
                in_flight["chars"] -= n_chars
                emit(path, ids)

        def emit(path: Path, ids) -> None:
            # the ids of `path`, after the eot that separates them from the previous file's
            nonlocal last_file
            if last_file is not None and path != last_file and eot_ids:
                write(np.asarray(eot_ids))
            last_file = path
            write(ids)

        def write(ids) -> None:
            nonlocal count
            if len(ids) and int(ids.max()) >= tokenizer.vocab_size:  # pragma: no cover - tokenizer bug guard
                raise TokvecValueError(f"id {int(ids.max())} >= vocab_size {tokenizer.vocab_size}")
            block = np.ascontiguousarray(ids, dtype=dtype).tobytes()
            digest.update(block)
            f.write(block)
            writeback.wrote(len(block))
            count += len(ids)

        offset, offset_file = 0, None
        # cut only where the tokenizer guarantees no token spans the cut, never by size: the ids are
        # those of each file encoded whole. A stretch with no safe cut comes in Unfinished parts: a
        # BPE tokenizer encodes it in bounded memory (encode_stretch), any other one whole.
        chunks = iter_corpus_chunks(
            files,
            encoding=encoding,
            progress=progress,
            cut=tokenizer.safe_cut,
            max_carry=None,
            long_carry=textstream.LONG_CARRY_CHARS,
        )
        for path, text in chunks:
            if path != offset_file:
                offset, offset_file = 0, path
            if isinstance(text, Unfinished):
                drain(0)  # ids stay in order: the stretch is encoded here, in this thread
                parts = _stretch(text, chunks)
                try:
                    for ids in encode_stretch(parts):
                        emit(path, ids)
                except TokvecError as e:
                    raise type(e)(f"{path} (a stretch with no safe cut from character {offset}): {e}") from None
                offset += parts.chars
                continue
            pending.append((pool.submit(job, path, text, offset), len(text)))
            in_flight["chars"] += len(text)
            offset += len(text)
            drain(2 * threads)
        drain(0)
        if eot_ids and last_file is not None:
            write(np.asarray(eot_ids))
        if sidecar.exists():  # the old sidecar must not vouch for the new .bin, even for a moment
            sidecar.unlink()
    info = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype,
        "count": count,
        "tokenizer": tokenizer.fingerprint(),
        "tokenizer_kind": getattr(tokenizer, "kind", type(tokenizer).__name__),
        "vocab_size": tokenizer.vocab_size,
        "eot": eot,
        "encoding": encoding,
        "corpus_files": len(files),
        "corpus_bytes": n_bytes,
        "blake2b": digest.hexdigest(),
    }
    write_json(sidecar, info)
    return info


def read_token_file_info(path: str | os.PathLike) -> dict:
    """The sidecar of token file ``path``, checked against the file's size."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no token file at {path}")
    side = sidecar_path(path)
    if not side.is_file():
        raise FormatError(
            f"{path} has no sidecar {side.name}: it is not a tokvec token file, or the run that "
            f"wrote it did not finish; re-run `tokvec encode` to make it"
        )
    info = read_json(side)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise FormatError(
            f"{side} is not a tokvec token-file sidecar (format {info.get('format') if isinstance(info, dict) else None!r})"
        )
    if info.get("version") != VERSION:
        raise FormatError(f"{side} is {FORMAT} version {info.get('version')!r}; this tokvec reads version {VERSION}")
    from .._schema import Doc

    doc = Doc(info, str(side), fix=f"the sidecar was edited or damaged; re-run `tokvec encode` to rebuild {path.name}")
    dtype = doc.str("dtype", choices=DTYPES)
    count = doc.int("count", lo=0, hi=2**62)
    doc.str("tokenizer", max_len=128)
    vocab_size = doc.int("vocab_size", lo=1, hi=2**32, default=None)
    if vocab_size is not None and dtype == "uint16" and vocab_size > 1 << 16:
        raise doc.error("dtype", f"uint32 for vocab_size {vocab_size} (uint16 holds ids below 65536)", dtype)
    doc.optional("blake2b", lambda k: doc.str(k, max_len=128))
    doc.optional("eot", lambda k: doc.str(k))
    expected = count * (2 if dtype == "uint16" else 4)
    size = path.stat().st_size
    if size != expected:
        raise FormatError(
            f"{path} is {size} bytes but its sidecar says {count} {dtype} ids = {expected} bytes; "
            f"the file is damaged or belongs to another run; re-run `tokvec encode`"
        )
    return info


def check_ids_below(ids: Any, vocab_size: int, source: str, *, block: int = 1 << 24) -> None:
    """Raise TokenIdError when any of ``ids`` (1-D array, memmap) is >= ``vocab_size``; block-wise max."""
    import numpy as np

    from ..errors import TokenIdError

    for start in range(0, len(ids), block):
        part = np.asarray(ids[start : start + block])
        top = int(part.max()) if len(part) else -1
        if top >= vocab_size:
            where = start + int(np.argmax(part >= vocab_size))
            raise TokenIdError(
                f"{source}: token id {int(ids[where])} at position {where} is >= vocab_size "
                f"{vocab_size} of the tokenizer; the file is damaged: re-run `tokvec encode`"
            )


def load_token_file(path: str | os.PathLike, *, tokenizer: Any = None, verify: bool = False):
    """The ids of token file ``path`` as a read-only ``np.memmap`` of shape ``(count,)``.

    ``tokenizer``: refuse a file made by a different tokenizer (fingerprints differ), and check once,
    vectorised, that every id is below its vocab_size (a file damaged in place keeps its size, and an
    id past the embedding table would fail deep inside the model).
    ``verify``: also check the content hash (reads the whole file).

    Every id is checked once here, vectorised, to be below the vocabulary size (the tokenizer's, else
    the sidecar's): a model fed windows of the returned array may skip its per-batch range check
    (``model(x, y, checked=True)``), which on a GPU is a device sync per step.
    """
    import numpy as np

    path = Path(path)
    info = read_token_file_info(path)
    if tokenizer is not None and tokenizer.fingerprint() != info["tokenizer"]:
        raise FormatError(
            f"{path} was encoded by tokenizer {info['tokenizer']} ({info.get('tokenizer_kind')}, "
            f"vocab_size {info.get('vocab_size')}), not by this one ({tokenizer.fingerprint()}); "
            f"re-encode the corpus with this tokenizer"
        )
    if info["count"] == 0:
        return np.zeros(0, dtype=info["dtype"])
    ids = np.memmap(path, dtype=info["dtype"], mode="r", shape=(info["count"],))
    if verify:
        digest = hashlib.blake2b(digest_size=16)
        step = 1 << 22
        for start in range(0, len(ids), step):
            digest.update(ids[start : start + step].tobytes())
        if digest.hexdigest() != info.get("blake2b"):
            raise FormatError(f"{path}: content hash differs from its sidecar; the file changed after it was written")
    vocab_size = tokenizer.vocab_size if tokenizer is not None else info.get("vocab_size")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 1:
        raise FormatError(
            f"{sidecar_path(path)}: vocab_size {vocab_size!r} is not a positive integer; "
            f"re-run `tokvec encode` to rewrite the sidecar"
        )
    if tokenizer is not None:  # one vectorised pass either way
        check_ids_below(ids, vocab_size, str(path))
    else:
        _check_range(ids, vocab_size, path)
    return ids


def _check_range(ids, vocab_size: int, path: Path, block: int = 1 << 24) -> None:
    """Refuse a token file holding an id >= vocab_size (the ids are unsigned: none is below 0).
    One vectorised max per block of 16M ids: memory stays bounded for any file size."""
    import numpy as np

    for start in range(0, len(ids), block):
        chunk = ids[start : start + block]
        hi = int(chunk.max())
        if hi >= vocab_size:
            first = int(np.argmax(chunk >= vocab_size))
            raise FormatError(
                f"{path}: token id {int(chunk[first])} at index {start + first} is out of range for "
                f"vocab_size {vocab_size}; ids must be in [0, {vocab_size - 1}]: the file was "
                f"made by another tokenizer or is damaged; re-run `tokvec encode`"
            )
