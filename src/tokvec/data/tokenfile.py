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
from typing import Any, Callable, Iterable

from .._io import atomic_open, read_json, write_json
from ..errors import FormatError, TokvecError, TokvecValueError
from ..textstream import expand_corpus, iter_corpus_chunks

FORMAT = "tokvec.tokens"
VERSION = 1
DTYPES = ("uint16", "uint32")


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


def write_token_file(tokenizer: Any, corpus: str | os.PathLike | Iterable[str | os.PathLike],
                     out: str | os.PathLike, *, encoding: str = "utf-8", allowed_special: Any = frozenset(),
                     eot: str | None = None, num_threads: int | None = None,
                     progress: Callable[[int], None] | None = None) -> dict:
    """Encode every file of ``corpus`` (paths, directories, globs) into the token file ``out``.

    ``eot``: a special token appended after each file (e.g. ``"<|endoftext|>"``), so a model sees
    where documents end. ``progress(n)`` is called with corpus bytes read. Returns the sidecar dict.
    """
    import numpy as np

    files = expand_corpus(corpus)
    out = Path(out)
    dtype = token_dtype(tokenizer.vocab_size)
    eot_ids: list[int] = []
    if eot is not None:
        specials = getattr(tokenizer, "special_tokens", {}) or {}
        if eot not in specials:
            raise TokvecValueError(f"eot {eot!r} is not a special token of this tokenizer "
                                   f"(it has {sorted(specials)!r}); train it with special_tokens=[{eot!r}]")
        eot_ids = [specials[eot]]
    encode = _encoder(tokenizer, allowed_special)
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
        pending: deque = deque()
        last_file: Path | None = None

        def drain(limit: int) -> None:
            nonlocal last_file
            while len(pending) > limit:
                path, ids = pending.popleft().result()
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
            count += len(ids)

        offset, offset_file = 0, None
        for path, text in iter_corpus_chunks(files, encoding=encoding, progress=progress):
            if path != offset_file:
                offset, offset_file = 0, path
            pending.append(pool.submit(job, path, text, offset))
            offset += len(text)
            drain(2 * threads)
        drain(0)
        if eot_ids and last_file is not None:
            write(np.asarray(eot_ids))
        if sidecar.exists():  # the old sidecar must not vouch for the new .bin, even for a moment
            sidecar.unlink()
    info = {
        "format": FORMAT, "version": VERSION, "dtype": dtype, "count": count,
        "tokenizer": tokenizer.fingerprint(), "tokenizer_kind": getattr(tokenizer, "kind", type(tokenizer).__name__),
        "vocab_size": tokenizer.vocab_size, "eot": eot, "encoding": encoding,
        "corpus_files": len(files), "corpus_bytes": n_bytes, "blake2b": digest.hexdigest(),
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
        raise FormatError(f"{path} has no sidecar {side.name}: it is not a tokvec token file, or the run that "
                          f"wrote it did not finish; re-run `tokvec encode` to make it")
    info = read_json(side)
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise FormatError(f"{side} is not a tokvec token-file sidecar (format {info.get('format') if isinstance(info, dict) else None!r})")
    if info.get("version") != VERSION:
        raise FormatError(f"{side} is {FORMAT} version {info.get('version')!r}; this tokvec reads version {VERSION}")
    dtype, count = info.get("dtype"), info.get("count")
    if dtype not in DTYPES or not isinstance(count, int) or count < 0:
        raise FormatError(f"{side}: dtype {dtype!r} / count {count!r} invalid (dtype one of {DTYPES}, count >= 0)")
    expected = count * (2 if dtype == "uint16" else 4)
    size = path.stat().st_size
    if size != expected:
        raise FormatError(f"{path} is {size} bytes but its sidecar says {count} {dtype} ids = {expected} bytes; "
                          f"the file is damaged or belongs to another run; re-run `tokvec encode`")
    return info


def load_token_file(path: str | os.PathLike, *, tokenizer: Any = None, verify: bool = False):
    """The ids of token file ``path`` as a read-only ``np.memmap`` of shape ``(count,)``.

    ``tokenizer``: refuse a file made by a different tokenizer (fingerprints differ).
    ``verify``: also check the content hash (reads the whole file).
    """
    import numpy as np

    path = Path(path)
    info = read_token_file_info(path)
    if tokenizer is not None and tokenizer.fingerprint() != info["tokenizer"]:
        raise FormatError(f"{path} was encoded by tokenizer {info['tokenizer']} ({info.get('tokenizer_kind')}, "
                          f"vocab_size {info.get('vocab_size')}), not by this one ({tokenizer.fingerprint()}); "
                          f"re-encode the corpus with this tokenizer")
    if info["count"] == 0:
        return np.zeros(0, dtype=info["dtype"])
    ids = np.memmap(path, dtype=info["dtype"], mode="r", shape=(info["count"],))
    if verify:
        digest = hashlib.blake2b(digest_size=16)
        step = 1 << 22
        for start in range(0, len(ids), step):
            digest.update(ids[start:start + step].tobytes())
        if digest.hexdigest() != info.get("blake2b"):
            raise FormatError(f"{path}: content hash differs from its sidecar; the file changed after it was written")
    return ids
