"""tiktoken's published encodings by name: ``load_tokenizer("cl100k_base")``, ``--tokenizer cl100k_base``.

Everything about an encoding -- the files it is built from (blob URL and sha256), its pre-tokenisation
pattern and its special tokens -- comes from tiktoken's own registry, the constructors in
``tiktoken_ext.openai_public``; tokvec types none of it. The ranks are read by tiktoken's own loader
from tiktoken's own cache (``tiktoken.load.read_file_cached``):

    cache directory  $TIKTOKEN_CACHE_DIR, else $DATA_GYM_CACHE_DIR, else <tempdir>/data-gym-cache
                     (set to "": caching off)
    file name        sha1(blob URL).hexdigest(), e.g. 9b5ad71b2ce5302211f9c61530b329a4922fc6a4 for cl100k_base

tokvec never downloads (nothing is fetched at run time). It checks the cache itself before tiktoken
runs, because on a miss -- or a cached file whose sha256 is wrong, which tiktoken deletes -- tiktoken
would go to the network, and without one ``requests`` can wait a long time. A missing file is one
error line saying what to download, from where, and the two ways to use it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import FormatError, TokvecValueError

ENCODING_NAMES = ("cl100k_base", "o200k_base", "p50k_base", "r50k_base", "gpt2")
_LOADERS = ("load_tiktoken_bpe", "data_gym_to_mergeable_bpe_ranks")  # the registry's two ways to read ranks


@dataclass(frozen=True)
class BlobFile:
    """One file an encoding is built from: where tiktoken downloads it and the sha256 it checks."""

    url: str
    sha256: str | None

    @property
    def cache_name(self) -> str:
        """The file name tiktoken's cache stores it under: sha1 of the URL."""
        return hashlib.sha1(self.url.encode()).hexdigest()


@dataclass(frozen=True)
class RegistryEntry:
    """What tiktoken's registry says about an encoding, without its ranks."""

    name: str
    files: tuple[BlobFile, ...]
    pat_str: str
    special_tokens: dict[str, int]


def _constructor(name: str) -> Callable[[], dict[str, Any]]:
    from tiktoken_ext import openai_public

    if name not in ENCODING_NAMES or name not in openai_public.ENCODING_CONSTRUCTORS:
        raise TokvecValueError(f"unknown tiktoken encoding {name!r}; tokvec loads {', '.join(ENCODING_NAMES)} by name")
    return openai_public.ENCODING_CONSTRUCTORS[name]


def registry_entry(name: str) -> RegistryEntry:
    """Files, pattern and special tokens of encoding ``name``, read from its tiktoken constructor.

    The constructor is run as a copy whose two rank loaders only record what they were asked for
    (URL, expected sha256) and return no ranks, so nothing is read or downloaded. The copy runs
    only if every other global it uses is plain data (a constructor calling anything else is refused).
    """
    constructor = _constructor(name)
    module_globals = constructor.__globals__
    calls = [
        n
        for n in constructor.__code__.co_names
        if n in module_globals and callable(module_globals[n]) and n not in _LOADERS
    ]
    if calls:
        raise TokvecValueError(
            f"tiktoken's constructor of {name!r} calls {calls}, which tokvec cannot run without "
            f"loading files; load the .tiktoken file by path instead"
        )
    files: list[BlobFile] = []

    def load_tiktoken_bpe(url: str, expected_hash: str | None = None) -> dict:
        files.append(BlobFile(url, expected_hash))
        return {}

    def data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file: str,
        encoder_json_file: str,
        vocab_bpe_hash: str | None = None,
        encoder_json_hash: str | None = None,
        **_: Any,
    ) -> dict:
        files.extend([BlobFile(vocab_bpe_file, vocab_bpe_hash), BlobFile(encoder_json_file, encoder_json_hash)])
        return {}

    recording = {
        **module_globals,
        "load_tiktoken_bpe": load_tiktoken_bpe,
        "data_gym_to_mergeable_bpe_ranks": data_gym_to_mergeable_bpe_ranks,
    }
    dry = types.FunctionType(
        constructor.__code__, recording, constructor.__name__, constructor.__defaults__, constructor.__closure__
    )
    spec = dry()
    return RegistryEntry(
        name=name, files=tuple(files), pat_str=spec["pat_str"], special_tokens=dict(spec["special_tokens"])
    )


def tiktoken_cache_dir() -> Path | None:
    """The directory tiktoken caches downloads in (its own rule, read from the environment now), or
    None when caching is off (``TIKTOKEN_CACHE_DIR=""``)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _missing(entry: RegistryEntry, cache: Path | None, absent: list[BlobFile]) -> TokvecValueError:
    what = " and ".join(f.url for f in absent)
    ways = []
    if len(entry.files) == 1:
        ways.append(f"pass the downloaded file's path instead of the name (e.g. ./{entry.name}.tiktoken)")
    if cache is None:
        ways.append("unset TIKTOKEN_CACHE_DIR (it is empty, which turns tiktoken's cache off) and save it in the cache")
    else:
        saved = " and ".join(str(cache / f.cache_name) for f in absent)
        ways.append(f"save it as {saved} (tiktoken's cache: $TIKTOKEN_CACHE_DIR, file name = sha1 of the URL)")
    return TokvecValueError(
        f"tiktoken encoding {entry.name!r} is not on this machine and tokvec does not download: "
        f"fetch {what}, then " + ", or ".join(ways)
    )


def load_encoding(name: str) -> dict[str, Any]:
    """tiktoken's constructor output for ``name`` (``mergeable_ranks``, ``pat_str``, ``special_tokens``),
    its ranks read by tiktoken's loader from tiktoken's cache; ``BPETokenizer.from_tiktoken_name`` wraps it.

    Raises (one line: what to download, from where, where to put it) when the file is not cached.
    """
    entry = registry_entry(name)
    cache = tiktoken_cache_dir()
    absent = [f for f in entry.files if cache is None or not (cache / f.cache_name).is_file()]
    if absent:
        raise _missing(entry, cache, absent)
    for f in entry.files:  # a wrong file would make tiktoken delete it and go to the network
        path = cache / f.cache_name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if f.sha256 is not None and digest != f.sha256:
            raise FormatError(
                f"{path} is in tiktoken's cache for {f.url} but its sha256 is {digest[:12]}..., not "
                f"{f.sha256[:12]}...: a partial or different file; delete it and download it again"
            )
    return _constructor(name)()  # tiktoken's loader: reads the verified cached files


def specials_for_file(path: Path) -> tuple[str, dict[str, int]] | None:
    """(pattern, special tokens) of the tiktoken encoding a rank file is named after
    (``cl100k_base.tiktoken`` -> cl100k_base's), or None for any other name."""
    stem = path.name.split(".")[0]
    if stem not in ENCODING_NAMES:
        return None
    entry = registry_entry(stem)
    return entry.pat_str, entry.special_tokens
