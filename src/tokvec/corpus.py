"""Corpus text for training: a file, a directory of files, or (by default) the Python standard library.

``corpus_ids`` is the one place where text becomes the flat id array the batcher reads; today it
encodes in memory, later it goes through the token-file module (corpus -> .bin + sidecar, memmap).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import TokvecValueError


def default_corpus_files() -> list[Path]:
    """The running Python's standard library, top-level modules (``*.py``), sorted by name (~4-5 MB)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    if not files:
        raise TokvecValueError(f"no standard-library sources found in {stdlib}; pass a corpus file")
    return files


def corpus_files(
    path: str | os.PathLike | Sequence[str | os.PathLike] | None, *, exclude: Iterable[str | os.PathLike] = ()
) -> list[Path]:
    """The files a corpus consists of: ``path`` itself, every non-hidden file under a directory
    (sorted by relative path), a list of files as given, or the default corpus when ``path`` is None.

    ``exclude``: directories whose files are never corpus (a run directory inside its own corpus
    directory must not read its checkpoints as text).
    """
    if path is None:
        return default_corpus_files()
    if not isinstance(path, (str, os.PathLike)):
        return [Path(p) for p in path]
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        skip = [Path(os.path.realpath(d)) for d in exclude]
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
            and not any(d in Path(os.path.realpath(p)).parents for d in skip)
        )
        if not files:
            raise TokvecValueError(f"corpus directory {path} holds no files; put text files in it")
        return files
    raise FileNotFoundError(f"no corpus file or directory at {path}")


def read_corpus(path: str | os.PathLike | Sequence[str | os.PathLike] | None, encoding: str = "utf-8") -> str:
    """All text of the corpus at ``path`` (see :func:`corpus_files`), files joined by a newline."""
    return "\n".join(read_text(f, encoding) for f in corpus_files(path))


def corpus_fingerprint(files: Sequence[Path]) -> str:
    """A cheap fingerprint of a corpus (each file's path, size and mtime), to notice that it changed."""
    import hashlib

    h = hashlib.sha256()
    for f in files:
        st = Path(f).stat()
        h.update(f"{os.path.realpath(f)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The whole text of one file; a decode failure is a one-line error naming the byte offset and the fix."""
    data = Path(path).read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise TokvecValueError(
            f"{path} is not valid {encoding} at byte offset {e.start}; pass --encoding "
            f"(encoding= in Python), e.g. --encoding gb18030 for a GBK Chinese file"
        ) from None
    except LookupError:
        raise TokvecValueError(f"unknown text encoding {encoding!r}; try utf-8, gb18030, latin-1") from None


def corpus_ids(tokenizer, text: str) -> np.ndarray:
    """Token ids of ``text`` as a flat array (n,), uint16 when the vocabulary fits, else uint32."""
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    return np.asarray(tokenizer.encode(text), dtype=dtype)
