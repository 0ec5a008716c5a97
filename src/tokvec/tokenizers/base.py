"""The one Tokenizer interface every tokvec tokenizer shares, and the loader that reads them back.

A tokenizer turns text into token ids and back::

    text --tokens()--> pieces --vocabulary--> ids --decode()--> text

Subclasses implement ``train`` (a classmethod), ``tokens``, ``encode``, ``decode``, ``vocab_size``,
``to_dict`` / ``from_dict``; saving, loading and batching come from here. Saved files are versioned
JSON: ``{"format": "tokvec.tokenizer", "version": 1, "kind": "char", ...}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

from .._io import read_json, write_json
from ..errors import FormatError, TokvecTypeError, TokvecValueError

FORMAT = "tokvec.tokenizer"
VERSION = 1
NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD")

_KINDS: dict[str, type["Tokenizer"]] = {}
# Loaders for files that are not tokvec JSON (.tiktoken rank files, HF tokenizer.json, ...):
# each gets (path, parsed JSON or None) and returns a Tokenizer, or None when the file is not its kind.
_FOREIGN_LOADERS: list[Callable[[Path, Any], "Tokenizer | None"]] = []
# Tokenizers known by a name rather than a file (tiktoken's "cl100k_base", ...): name -> loader.
_NAMED_LOADERS: dict[str, Callable[[], "Tokenizer"]] = {}


def register_tokenizer(kind: str) -> Callable[[type["Tokenizer"]], type["Tokenizer"]]:
    """Class decorator: make ``load_tokenizer`` read saved files whose ``kind`` is ``kind``."""

    def decorate(cls: type[Tokenizer]) -> type[Tokenizer]:
        cls.kind = kind
        _KINDS[kind] = cls
        return cls

    return decorate


def register_foreign_loader(loader: Callable[[Path, Any], "Tokenizer | None"]) -> None:
    """Teach ``load_tokenizer`` another file format (see ``_FOREIGN_LOADERS``)."""
    _FOREIGN_LOADERS.append(loader)


def register_named_tokenizer(name: str, loader: Callable[[], "Tokenizer"]) -> None:
    """Teach ``load_tokenizer`` a tokenizer it loads by name (when no file has that name)."""
    _NAMED_LOADERS[name] = loader


def check_normalization(normalization: str | None) -> str | None:
    if normalization is None:
        return None
    norm = str(normalization).upper()
    if norm not in NORMALIZATIONS:
        raise TokvecValueError(
            f"unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)} or None"
        )
    return norm


def as_id_list(ids: Any) -> list[int]:
    """Accept a list/tuple of ints, a 1-D torch tensor or numpy array; return a list of ints."""
    if hasattr(ids, "tolist") and not isinstance(ids, (list, tuple)):
        dtype = str(getattr(ids, "dtype", ""))
        if "float" in dtype or "complex" in dtype or "bool" in dtype:
            raise TokvecTypeError(f"token ids must be integers, got a tensor/array of dtype {dtype}")
        if getattr(ids, "ndim", 1) != 1:
            raise TokvecTypeError(
                f"decode takes one sequence of ids (1-D), got {ids.ndim}-D with shape {tuple(ids.shape)}; "
                f"use decode_batch for a batch"
            )
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TokvecTypeError(f"token ids must be a sequence of integers, got {type(ids).__name__}")
    return list(ids)


class Tokenizer(ABC):
    """Text <-> token ids. See the module docstring for the contract."""

    kind: ClassVar[str] = "abstract"

    # -- what every tokenizer implements ------------------------------------------------------
    @classmethod
    @abstractmethod
    def train(cls, texts: Iterable[str], **options: Any) -> "Tokenizer":
        """Learn a vocabulary from ``texts`` (an iterable of strings)."""

    @abstractmethod
    def tokens(self, text: str) -> list[str]:
        """The pieces ``text`` splits into, as strings (what ``encode`` looks up)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; an out-of-range id raises TokenIdError naming it and its position."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids; valid ids are ``0 .. vocab_size - 1``."""

    @property
    def text_vocab_size(self) -> int:
        """Ids of plain text (special tokens disallowed) are below this: the rows an embedding table
        needs when it only ever sees plain text. Default ``vocab_size``; byte-level BPE: its ranks
        (cl100k_base: 100256, its specials sit at 100257..100276)."""
        return self.vocab_size

    @abstractmethod
    def to_dict(self) -> dict:
        """Everything needed to rebuild this tokenizer, JSON-serialisable (without format/version/kind)."""

    @classmethod
    @abstractmethod
    def from_dict(cls, data: Mapping, **options: Any) -> "Tokenizer":
        """Rebuild from :meth:`to_dict` output."""

    # -- shared behaviour ---------------------------------------------------------------------
    def encode_batch(self, texts: Iterable[str], **options: Any) -> list[list[int]]:
        """Ids of each text. Subclasses with a faster batch path override this."""
        return [self.encode(t, **options) for t in texts]

    def decode_batch(self, batch: Iterable[Sequence[int]], **options: Any) -> list[str]:
        return [self.decode(ids, **options) for ids in batch]

    def safe_cut(self, text: str) -> int:
        """The last index ``i`` of ``text`` where it may be cut so that ``encode(text[:i]) +
        encode(text[i:]) == encode(text)`` whatever follows; 0 when there is none.

        Token files stream a corpus in chunks cut here. This default knows no safe cut, so a
        tokenizer that does not say otherwise gets each file encoded whole."""
        return 0

    pad_id: int | None = None
    unk_id: int | None = None
    bos_id: int | None = None
    eos_id: int | None = None

    def stream_decoder(self) -> "StreamDecoder":
        """An incremental decoder for streaming generation: ``push(ids) -> str`` emits new text,
        ``flush() -> str`` emits whatever is held back. Byte-level tokenizers override it so that
        text is emitted only when the bytes form whole characters."""
        return StreamDecoder(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as versioned JSON (atomically); read it back with ``tokvec.load_tokenizer``."""
        write_json(path, self.to_json_dict())

    def save_hf(self, directory: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``directory`` (atomically) so that
        transformers' ``AutoTokenizer.from_pretrained(directory)`` gives the same ids. Returns the
        tokenizer.json path. See :mod:`tokvec.tokenizers.hf_export` for what each kind becomes."""
        from .hf_export import to_hf_json, tokenizer_config

        data = to_hf_json(self)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "tokenizer.json", data)
        write_json(directory / "tokenizer_config.json", tokenizer_config(self))
        return directory / "tokenizer.json"

    def to_json_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, **self.to_dict()}

    def fingerprint(self) -> str:
        """A short stable hash of the tokenizer's content: two tokenizers with equal ids share it."""
        blob = json.dumps(self.to_json_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class StreamDecoder:
    """Decodes ids as they arrive. Default: each push decodes its ids on their own (right for
    tokenizers whose tokens are whole strings: char, word)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def push(self, ids: Sequence[int] | int) -> str:
        """Text for the new ids (may be "" when a byte-level decoder is waiting for more bytes)."""
        return self.tokenizer.decode([ids] if isinstance(ids, int) else ids)

    def flush(self) -> str:
        """Text still held back at the end of the stream."""
        return ""


def load_tokenizer(path: str | os.PathLike, **options: Any) -> Tokenizer:
    """Read any tokenizer file tokvec knows: its own JSON, and formats registered by other modules;
    or one of tiktoken's encodings by name (``"cl100k_base"``, from tiktoken's cache, never downloaded).

    ``options`` go to the tokenizer's ``from_dict`` (e.g. ``segmenter=`` for a WordTokenizer saved
    with a custom segmenter).
    """
    if isinstance(path, str) and path in _NAMED_LOADERS and not Path(path).is_file():
        return _NAMED_LOADERS[path]()  # e.g. tiktoken's encoding by name, from tiktoken's cache
    path = Path(path)
    if not path.is_file():
        named = f" (or a name: {', '.join(_NAMED_LOADERS)})" if _NAMED_LOADERS else ""
        raise FileNotFoundError(f"no tokenizer file at {path}{named}")
    data: Any = None
    if path.suffix.lower() == ".json":
        data = read_json(path)
    for loader in _FOREIGN_LOADERS:
        try:
            tok = loader(path, data)
        except (TokvecValueError, TokvecTypeError) as e:  # a check deep in a constructor: name the file
            if str(path) in str(e):
                raise
            raise FormatError(f"{path}: {e}") from None
        if tok is not None:
            return tok
    if data is None:
        data = read_json(path)
    return tokenizer_from_dict(data, source=str(path), **options)


def tokenizer_from_dict(data: Any, *, source: str = "tokenizer data", **options: Any) -> Tokenizer:
    """Rebuild a tokenizer from ``Tokenizer.to_json_dict()`` (what ``save`` writes), checking format,
    version and kind, then every field of that kind (see :mod:`tokvec._schema`). ``source`` names
    where the data came from in error messages."""
    from .._schema import Doc

    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise FormatError(
            f"{source} is not a tokenizer file tokvec reads (format {found!r}); "
            f"expected {FORMAT!r} written by Tokenizer.save()"
        )
    if data.get("version") != VERSION:
        raise FormatError(f"{source} is {FORMAT} version {data.get('version')!r}; this tokvec reads version {VERSION}")
    kind = Doc(data, source).str("kind", choices=sorted(_KINDS))
    try:
        return _KINDS[kind].from_dict(data, source=source, **options)
    except (TokvecValueError, TokvecTypeError) as e:
        if isinstance(e, FormatError) or source in str(e):
            raise
        raise FormatError(f"{source}: {e}") from None


def read_normalization(doc: Any) -> str | None:
    """The ``normalization`` field of a saved tokenizer: null or one of NORMALIZATIONS."""
    return doc.optional("normalization", lambda k: doc.str(k, choices=NORMALIZATIONS))


def normalize(text: str, normalization: str | None) -> str:
    if not isinstance(text, str):
        raise TokvecTypeError(f"text must be str, got {type(text).__name__}")
    return unicodedata.normalize(normalization, text) if normalization else text
