"""Tokenizers that split text into pieces and look each piece up in a :class:`~tokvec.Vocabulary`.

CharTokenizer and WordTokenizer differ only in how they split (``_split``) and join (``_join``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Iterable, Mapping, Sequence

from ..errors import TokvecValueError
from ..vocab import Vocabulary
from .base import Tokenizer, as_id_list, check_normalization, normalize, read_normalization


class VocabTokenizer(Tokenizer):
    """A splitting rule plus a Vocabulary. Unknown pieces encode to ``<unk>``."""

    def __init__(self, vocab: Vocabulary, *, normalization: str | None = None) -> None:
        if not isinstance(vocab, Vocabulary):
            raise TokvecValueError(f"vocab must be a tokvec.Vocabulary, got {type(vocab).__name__}")
        self.vocab = vocab
        self.normalization = check_normalization(normalization)
        self.pad_id, self.unk_id = vocab.pad_id, vocab.unk_id
        self.bos_id, self.eos_id = vocab.bos_id, vocab.eos_id

    # subclasses: how text splits into pieces and how pieces join back
    @abstractmethod
    def _split(self, text: str) -> list[str]: ...

    @abstractmethod
    def _join(self, pieces: list[str]) -> str: ...

    @classmethod
    def _train_vocab(
        cls,
        texts: Iterable[str],
        split,
        *,
        min_freq: int,
        max_size: int | None,
        specials: Sequence[str],
        order: str = "frequency",
    ) -> Vocabulary:
        if isinstance(texts, str):
            texts = [texts]  # a bare string is one text, not an iterable of one-character texts
        return Vocabulary.build(
            (piece for text in texts for piece in split(text)),
            min_freq=min_freq,
            max_size=max_size,
            specials=specials,
            order=order,
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokens(self, text: str) -> list[str]:
        return self._split(normalize(text, self.normalization))

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of ``text``; ``add_bos`` / ``add_eos`` wrap them in ``<bos>`` ... ``<eos>``."""
        ids = self.vocab.lookup_ids(self.tokens(text))
        if add_bos:
            ids.insert(0, self._require_special(self.bos_id, "<bos>"))
        if add_eos:
            ids.append(self._require_special(self.eos_id, "<eos>"))
        return ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids``. ``<unk>`` decodes to the string ``"<unk>"``; specials are kept unless skipped."""
        ids = as_id_list(ids)
        pieces = self.vocab.lookup_tokens(ids)
        if skip_special_tokens:
            specials = self.vocab.special_ids
            pieces = [p for p, i in zip(pieces, ids) if i not in specials]
        return self._join(pieces)

    def _require_special(self, token_id: int | None, name: str) -> int:
        if token_id is None:
            raise TokvecValueError(
                f"this tokenizer's vocabulary has no {name} token; train it with {name} among specials"
            )
        return token_id

    def to_dict(self) -> dict:
        return {"normalization": self.normalization, "vocab": self.vocab.to_dict()}

    @classmethod
    def _vocab_from(cls, data: Mapping, source: str) -> Vocabulary:
        from .._schema import Doc

        Doc(data, source).obj("vocab")  # present and an object; its fields are the Vocabulary's to check
        return Vocabulary.from_dict(data["vocab"], source=f"{source} (vocab)")

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "tokenizer data", **options: Any) -> "VocabTokenizer":
        from .._schema import Doc

        return cls(cls._vocab_from(data, source), normalization=read_normalization(Doc(data, source)), **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, normalization={self.normalization!r})"
