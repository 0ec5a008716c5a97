"""Vocabulary: the two-way map between tokens (strings) and ids (ints).

Special tokens come first, at fixed ids (``<pad>=0 <unk>=1 <bos>=2 <eos>=3`` by default); then the
ordinary tokens by descending frequency, ties broken by first appearance, so the same corpus always
gives the same ids. ``order="first"`` keeps first appearance only (the classic tutorials' ids).

>>> v = Vocabulary.build("abracadabra")
>>> [v.id_to_token(i) for i in range(len(v))]
['<pad>', '<unk>', '<bos>', '<eos>', 'a', 'b', 'r', 'c', 'd']
>>> Vocabulary.build("你好好嗎嗎", specials=(), unk_token=None, order="first").lookup_ids("你好嗎")
[0, 1, 2]
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable, Iterator, Mapping, Sequence

from ._io import read_json, write_json
from .errors import FormatError, TokenIdError, TokvecTypeError, TokvecValueError, UnknownTokenError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
DEFAULT_SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
ORDERS = ("frequency", "first")

FORMAT = "tokvec.vocab"
VERSION = 1


class Vocabulary:
    """A fixed token <-> id table with special tokens at the front.

    Build one with :meth:`build` (from a stream of tokens) or pass the tokens in id order.
    ``unk_token`` names the special that unknown tokens map to; when it is ``None`` (or absent from
    ``specials``) looking up an unknown token raises :class:`~tokvec.errors.UnknownTokenError`.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        *,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        unk_token: str | None = UNK,
    ) -> None:
        specials = list(specials)
        if len(set(specials)) != len(specials):
            raise TokvecValueError(f"special tokens must be distinct, got {specials}")
        itos = specials + [t for t in tokens if t not in set(specials)]
        stoi: dict[str, int] = {}
        for i, t in enumerate(itos):
            if not isinstance(t, str):
                raise TokvecTypeError(f"tokens must be str, got {type(t).__name__} {t!r} at id {i}")
            if t in stoi:
                raise TokvecValueError(f"token {t!r} appears twice (ids {stoi[t]} and {i}); tokens must be unique")
            stoi[t] = i
        self._itos = itos
        self._stoi = stoi
        self.specials: tuple[str, ...] = tuple(specials)
        self.unk_token = unk_token if unk_token in stoi else None
        self.counts: dict[str, int] = {}  # corpus counts, filled by build(); not saved

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = DEFAULT_SPECIALS,
        unk_token: str | None = UNK,
        order: str = "frequency",
    ) -> "Vocabulary":
        """Count ``tokens`` and keep those seen at least ``min_freq`` times.

        Order: specials, then ``order="frequency"`` (descending, ties by first appearance) or
        ``order="first"`` (first appearance only). ``max_size`` caps the whole vocabulary, specials
        included; the most frequent (or the first seen) tokens win.
        """
        if order not in ORDERS:
            raise TokvecValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
        if not isinstance(min_freq, int) or min_freq < 1:
            raise TokvecValueError(f"min_freq must be an integer >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < len(specials)):
            raise TokvecValueError(
                f"max_size {max_size!r} is smaller than the {len(specials)} special tokens {list(specials)}; "
                f"use max_size >= {len(specials)} or fewer specials"
            )
        counts = Counter(tokens)  # insertion order = first appearance; sorted() below is stable
        special_set = set(specials)
        ranked = [t for t, c in counts.items() if c >= min_freq and t not in special_set]
        if order == "frequency":
            ranked.sort(key=lambda t: -counts[t])
        if max_size is not None:
            ranked = ranked[: max_size - len(specials)]
        vocab = cls(ranked, specials=specials, unk_token=unk_token)
        vocab.counts = {t: counts[t] for t in ranked}
        return vocab

    # -- lookups ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __iter__(self) -> Iterator[str]:
        return iter(self._itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, specials={list(self.specials)}, unk_token={self.unk_token!r})"

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; an unknown token maps to ``<unk>`` (or raises when there is none)."""
        i = self._stoi.get(token)
        if i is not None:
            return i
        if self.unk_token is None:
            raise UnknownTokenError(
                f"token {token!r} is not in the vocabulary ({len(self)} tokens) and it has no unk token; "
                f"build it with unk_token='<unk>' among the specials, or add the token"
            )
        return self._stoi[self.unk_token]

    def id_to_token(self, index: int) -> str:
        """The token with id ``index``; raises TokenIdError outside ``[0, len(self))``."""
        if isinstance(index, bool) or not isinstance(index, int):
            try:
                index = int(index.__index__())  # numpy/torch integer scalars
            except AttributeError:
                raise TokvecTypeError(f"token ids must be integers, got {type(index).__name__} {index!r}") from None
        if not 0 <= index < len(self._itos):
            raise TokenIdError(
                f"token id {index} is out of range for vocab_size {len(self)}; ids must be in [0, {len(self) - 1}]"
            )
        return self._itos[index]

    def lookup_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens`` in order (unknown -> ``<unk>``)."""
        stoi, unk = self._stoi, self._stoi.get(self.unk_token) if self.unk_token else None
        if unk is not None:
            return [stoi.get(t, unk) for t in tokens]
        return [self.token_to_id(t) for t in tokens]

    def lookup_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` in order; raises TokenIdError naming the first bad id and its position."""
        itos, n, out = self._itos, len(self._itos), []
        for pos, i in enumerate(ids):
            if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n:
                out.append(itos[i])
                continue
            try:
                out.append(self.id_to_token(i))
            except TokenIdError:
                raise TokenIdError(
                    f"token id {i} at position {pos} is out of range for vocab_size {n}; "
                    f"ids must be in [0, {n - 1}] (were they made by another tokenizer?)"
                ) from None
        return out

    def special_id(self, token: str) -> int | None:
        """Id of a special token, or None when the vocabulary has no such special."""
        return self._stoi[token] if token in self.specials else None

    @property
    def pad_id(self) -> int | None:
        return self.special_id(PAD)

    @property
    def unk_id(self) -> int | None:
        return self._stoi[self.unk_token] if self.unk_token else None

    @property
    def bos_id(self) -> int | None:
        return self.special_id(BOS)

    @property
    def eos_id(self) -> int | None:
        return self.special_id(EOS)

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(self._stoi[s] for s in self.specials)

    # -- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "specials": list(self.specials),
            "unk_token": self.unk_token,
            "tokens": self._itos[len(self.specials) :],
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "vocabulary data") -> "Vocabulary":
        from ._schema import Doc

        if not isinstance(data, Mapping):
            raise FormatError(f"{source} is not a tokvec vocabulary (expected a JSON object)")
        fmt, version = data.get("format"), data.get("version")
        if fmt != FORMAT:
            raise FormatError(f"{source} has format {fmt!r}, expected {FORMAT!r}; is it a tokvec vocabulary file?")
        if version != VERSION:
            raise FormatError(
                f"{source} is {FORMAT} version {version!r}; this tokvec reads version {VERSION}. "
                f"Upgrade tokvec to read newer files"
            )
        doc = Doc(data, source)
        tokens = doc.str_list("tokens", unique=True)
        specials = doc.str_list("specials", unique=True)
        unk = doc.optional("unk_token", lambda k: doc.str(k))
        clash = next((t for t in tokens if t in set(specials)), None)
        if clash is not None:
            raise doc.error("tokens", "free of the special tokens (they are listed in 'specials')", clash)
        return cls(tokens, specials=specials, unk_token=unk)

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as versioned JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a file written by :meth:`save`; refuses other formats and versions."""
        return cls.from_dict(read_json(path), source=str(path))
