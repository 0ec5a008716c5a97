"""The embedding lookup table and the input stage of a Transformer.

    ids (b, s) --TokenEmbedding--> (b, s, d) --+ positional (additive schemes)--> --dropout--> (b, s, d)

Shape legend: b = batch_size, s = seq_length, d = d_model, V = vocab_size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor, nn

from .errors import TokenIdError, TokvecTypeError, TokvecValueError, UnknownTokenError
from .positional import PositionalEncoding, build
from .positional.base import check_positive_int

if TYPE_CHECKING:
    from .tokenizers.word_vectors import WordVectors

INITS = ("normal", "uniform", "xavier")
OOV_POLICIES = ("random", "zero", "error")


@dataclass
class Coverage:
    """How many of a vocabulary's tokens a word-vector file holds (special tokens not counted)."""

    found: int
    total: int
    source: str = ""
    missing: list[str] = field(default_factory=list)  # the first missing tokens, in id order
    n_missing: int = 0

    @property
    def ratio(self) -> float:
        return self.found / self.total if self.total else 1.0

    def __str__(self) -> str:
        text = (
            f"coverage {self.found:,} / {self.total:,} tokens ({self.ratio:.1%}) found in "
            f"{self.source or 'the word vectors'}"
        )
        if self.n_missing:
            text += f"; {self.n_missing:,} missing, e.g. {', '.join(map(repr, self.missing[:5]))}"
        return text


def check_ids(ids: Tensor, vocab_size: int, *, check_range: bool = True) -> Tensor:
    """Refuse ids a lookup would choke on, naming the first bad one. ids: (s,) or (b, s) integer.

    Checked before the lookup: on a GPU the raw failure is an opaque device-side assert.
    ``check_range=False`` checks type and rank only: the range check reads a reduction back to
    the host (a device sync per call on a GPU), so callers whose ids were validated in bulk (batches
    of a token file checked when it was opened) skip it.
    """
    if not isinstance(ids, Tensor):
        raise TokvecTypeError(
            f"ids must be a torch.Tensor of token ids, got {type(ids).__name__}; wrap them: torch.tensor([ids])"
        )
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TokvecTypeError(f"ids must be an integer tensor (torch.long), got dtype {ids.dtype}")
    if ids.dtype not in (torch.long, torch.int32):  # uint8, int16, ...: torch's lookup takes only these two
        raise TokvecTypeError(
            f"ids must be a torch.long (or int32) tensor, got dtype {ids.dtype}; convert them with ids.long()"
        )
    if ids.dim() not in (1, 2):
        raise TokvecValueError(
            f"ids must be (seq,) or (batch, seq), got a {ids.dim()}-D tensor of shape {tuple(ids.shape)}"
        )
    if check_range and ids.numel():
        lo, hi = torch.aminmax(ids)
        if int(lo) < 0 or int(hi) >= vocab_size:
            bad = ((ids < 0) | (ids >= vocab_size)).nonzero()[0].tolist()
            value = int(ids[tuple(bad)])
            where = bad[0] if len(bad) == 1 else tuple(bad)
            raise TokenIdError(
                f"token id {value} at position {where} is out of range for vocab_size {vocab_size}; "
                f"ids must be in [0, {vocab_size - 1}] (use the tokenizer this embedding was built for, "
                f"or a larger vocab_size)"
            )
    return ids


@dataclass(frozen=True)
class ContextFit:
    """Ids padded or cropped to a context length, and what was done: see :func:`fit_to_context`."""

    ids: list[int]  # exactly `context` ids
    padding_mask: list[bool]  # True at the padding positions
    original_length: int
    pad_id: int

    @property
    def context(self) -> int:
        return len(self.ids)

    def describe(self, pad_name: str | None = None) -> str:
        """One line saying what was padded or cropped: ``5 padding ids (0) at positions 11..15``."""
        n, c = self.original_length, self.context
        if n == c:
            return f"{n} tokens fill the context exactly"
        if n > c:
            return f"{n} tokens cropped to the first {c} (positions {c}..{n - 1} dropped)"
        what = f"id {self.pad_id} ({pad_name})" if pad_name else f"id {self.pad_id} (no <pad> token: masked)"
        where = f"position {n}" if c - n == 1 else f"positions {n}..{c - 1}"
        return (
            f"{n} tokens padded with {c - n} x {what} at {where}; "
            f"padding mask True there, so those output rows are zero"
        )


def fit_to_context(ids: list[int], context: int, *, pad_id: int = 0) -> ContextFit:
    """Pad (on the right, with ``pad_id``) or crop (keeping the first tokens) ``ids`` to ``context``.

    >>> fit_to_context([5, 6, 7], 5).ids, fit_to_context([5, 6, 7], 5).padding_mask
    ([5, 6, 7, 0, 0], [False, False, False, True, True])
    >>> fit_to_context([5, 6, 7], 2).ids
    [5, 6]
    """
    check_positive_int("context", context)
    ids = list(ids)
    kept = ids[:context]
    padding = context - len(kept)
    return ContextFit(
        ids=kept + [pad_id] * padding,
        padding_mask=[False] * len(kept) + [True] * padding,
        original_length=len(ids),
        pad_id=pad_id,
    )


class TokenEmbedding(nn.Module):
    """The (vocab_size, d_model) lookup table: row i is the vector of token id i.

    init: ``"normal"`` N(0, 0.02) as GPT-2; ``"uniform"`` U[0, 1) as the ``torch.rand`` table of the
    classic tutorials; ``"xavier"`` Xavier/Glorot uniform. ``scale=True`` multiplies the output by
    sqrt(d_model) as in Vaswani et al. §3.4 (so the vectors are not dwarfed by the positional ones).
    ``padding_idx``: that row is zero and receives no gradient.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        *,
        padding_idx: int | None = None,
        init: str = "normal",
        scale: bool = False,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        self.d_model = check_positive_int("d_model", d_model)
        if padding_idx is not None and not (isinstance(padding_idx, int) and 0 <= padding_idx < vocab_size):
            raise TokvecValueError(
                f"padding_idx {padding_idx!r} is out of range for vocab_size {vocab_size}; "
                f"it must be in [0, {vocab_size - 1}] or None"
            )
        if init not in INITS:
            raise TokvecValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.init, self.std = init, std
        self.scale = math.sqrt(d_model) if scale else 1.0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        w = self.embedding.weight
        with torch.no_grad():
            if self.init == "normal":
                nn.init.normal_(w, mean=0.0, std=self.std)
            elif self.init == "uniform":
                nn.init.uniform_(w, 0.0, 1.0)
            else:
                nn.init.xavier_uniform_(w)
            if self.padding_idx is not None:
                w[self.padding_idx].zero_()

    @property
    def weight(self) -> Tensor:
        """The table: (vocab_size, d_model)."""
        return self.embedding.weight

    @property
    def padding_idx(self) -> int | None:
        return self.embedding.padding_idx

    def forward(self, ids: Tensor, *, checked: bool = False) -> Tensor:
        """ids: (b, s) or (s,) integer -> (b, s, d) or (s, d).

        checked: the ids are known to be in [0, vocab_size) (see :func:`check_ids`); skip the range check.
        """
        x = self.embedding(check_ids(ids, self.vocab_size, check_range=not checked))
        if self.scale != 1.0:
            x = x.mul_(self.scale)  # in place: x is the lookup's own fresh output
        return x

    def freeze(self) -> "TokenEmbedding":
        """Stop training the table (requires_grad=False). Returns self."""
        self.embedding.weight.requires_grad_(False)
        return self

    def unfreeze(self) -> "TokenEmbedding":
        self.embedding.weight.requires_grad_(True)
        return self

    @property
    def frozen(self) -> bool:
        return not self.embedding.weight.requires_grad

    @classmethod
    def from_pretrained(
        cls, weights: Tensor, *, freeze: bool = True, padding_idx: int | None = None, scale: bool = False
    ) -> "TokenEmbedding":
        """Wrap an existing (vocab_size, d_model) table (word2vec, GloVe, another model's rows).

        The rows are copied as given (a padding row is not zeroed: it is yours).
        """
        if not isinstance(weights, Tensor) or weights.dim() != 2 or not weights.is_floating_point():
            shape = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
            raise TokvecValueError(f"pretrained weights must be a 2-D float tensor (vocab_size, d_model), got {shape}")
        emb = cls(weights.shape[0], weights.shape[1], padding_idx=padding_idx, scale=scale)
        emb.embedding.weight = nn.Parameter(weights.detach().clone(), requires_grad=not freeze)
        return emb

    @classmethod
    def from_word_vectors(
        cls,
        vectors: "str | os.PathLike | WordVectors",
        *,
        vocab: Any,
        oov: str = "random",
        freeze: bool = True,
        padding_idx: int | None = None,
        format: str = "auto",
        lowercase_fallback: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> "tuple[TokenEmbedding, Coverage]":
        """A (len(vocab), d) table whose row i is the pretrained vector of token i; and the coverage.

        vectors: a GloVe / word2vec / fastText file (see :func:`tokvec.tokenizers.word_vectors.read_word_vectors`) or
            a loaded :class:`~tokvec.tokenizers.word_vectors.WordVectors`.
        vocab: a word or char tokenizer, a :class:`~tokvec.Vocabulary`, or token strings in id order.
        oov: rows of tokens the file lacks: ``"random"`` N(0, std of the file's numbers) from
            ``seed``; ``"zero"``; ``"error"`` (raise, naming the missing tokens).
        Special tokens (``<pad>``, ``<unk>``...) are never in such a file: not counted in the
        coverage, zero under ``"zero"``/``"error"``, random under ``"random"``. The padding row
        (``padding_idx``, default the tokenizer's ``<pad>``) is zero.
        ``lowercase_fallback``: a token missing as is takes the vector of its lower-case form
        (GloVe's files are lower-cased).
        """
        from .tokenizers.word_vectors import WordVectors, read_word_vectors

        if oov not in OOV_POLICIES:
            raise TokvecValueError(f"unknown oov policy {oov!r}; choose one of {', '.join(OOV_POLICIES)}")
        tokens, specials, pad = _vocab_tokens(vocab)
        if padding_idx is None:
            padding_idx = pad
        wv = vectors if isinstance(vectors, WordVectors) else read_word_vectors(vectors, format=format)
        index = wv.index
        ids, rows, missing = [], [], []
        n_missing = 0
        for i, tok in enumerate(tokens):
            if i in specials:
                continue
            row = index.get(tok)
            if row is None and lowercase_fallback:
                row = index.get(tok.lower())
            if row is None:
                n_missing += 1
                if len(missing) < 20:
                    missing.append(tok)
            else:
                ids.append(i)
                rows.append(row)
        coverage = Coverage(
            found=len(ids), total=len(tokens) - len(specials), source=wv.path, missing=missing, n_missing=n_missing
        )
        if oov == "error" and n_missing:
            raise UnknownTokenError(
                f"{n_missing:,} of {coverage.total:,} tokens have no vector in {wv.path or 'the word vectors'} "
                f"(e.g. {', '.join(map(repr, missing[:5]))}); pass oov='random' or oov='zero' to initialise them"
                + ("" if lowercase_fallback else ", or lowercase_fallback=True")
            )
        table = torch.zeros((len(tokens), wv.dim), dtype=torch.float32)
        if oov == "random" and len(wv):
            gen = torch.Generator().manual_seed(seed)
            std = float(wv.vectors.std()) if wv.vectors.numel() > 1 else 1.0
            table.normal_(0.0, std, generator=gen)
        if ids:
            table[torch.tensor(ids)] = wv.vectors[torch.tensor(rows)]
        if padding_idx is not None:
            if not (isinstance(padding_idx, int) and 0 <= padding_idx < len(tokens)):
                raise TokvecValueError(
                    f"padding_idx {padding_idx!r} is out of range for a vocabulary of "
                    f"{len(tokens)} tokens; it must be in [0, {len(tokens) - 1}] or None"
                )
            table[padding_idx] = 0.0
        emb = cls.from_pretrained(table.to(dtype=dtype, device=device), freeze=freeze, padding_idx=padding_idx)
        return emb, coverage

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, d_model={self.d_model}, init={self.init!r}, "
            f"scale={self.scale:g}, padding_idx={self.padding_idx}"
        )


def _vocab_tokens(vocab: Any) -> tuple[list[str], set[int], int | None]:
    """(token strings in id order, ids of special tokens, pad id) of a tokenizer, Vocabulary or list."""
    from .vocab import Vocabulary

    inner = getattr(vocab, "vocab", None)
    if isinstance(inner, Vocabulary):
        vocab = inner
    if isinstance(vocab, Vocabulary):
        return list(vocab), set(vocab.special_ids), vocab.pad_id
    if isinstance(vocab, Sequence) and not isinstance(vocab, str) and all(isinstance(t, str) for t in vocab):
        return list(vocab), set(), None
    raise TokvecTypeError(
        f"vocab must be a word or char tokenizer, a tokvec.Vocabulary or a list of token strings, "
        f"got {type(vocab).__name__}; a byte-level BPE has no words to look up"
    )


class InputEmbedding(nn.Module):
    """Token vectors + position vectors + dropout: what the first Transformer block reads.

    ``positional`` is a scheme name (``"sinusoidal"``, ``"learned"``, ``"none"``, and schemes that
    act inside attention such as ``"rope"``, for which this stage adds nothing) or a ready
    :class:`~tokvec.positional.PositionalEncoding`. ``positional_options`` go to the scheme.

    >>> emb = InputEmbedding(vocab_size=7, d_model=64, positional="sinusoidal", max_len=5000, dropout=0.1)
    >>> emb(torch.tensor([[4, 5, 5, 6, 6]])).shape
    torch.Size([1, 5, 64])
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        *,
        positional: str | PositionalEncoding = "sinusoidal",
        max_len: int = 5000,
        dropout: float = 0.0,
        padding_idx: int | None = None,
        init: str = "normal",
        scale: bool = False,
        n_heads: int | None = None,
        positional_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise TokvecValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.token = TokenEmbedding(vocab_size, d_model, padding_idx=padding_idx, init=init, scale=scale)
        context: dict[str, Any] = {"d_model": d_model, "max_len": max_len}
        if n_heads is not None:
            context.update(n_heads=n_heads, head_dim=d_model // n_heads)
        self.positional = build(positional, **context, **(positional_options or {}))
        self.dropout = nn.Dropout(dropout)

    @property
    def d_model(self) -> int:
        return self.token.d_model

    @property
    def vocab_size(self) -> int:
        return self.token.vocab_size

    def forward(
        self, ids: Tensor, *, positions: Tensor | None = None, padding_mask: Tensor | None = None, checked: bool = False
    ) -> Tensor:
        """ids: (b, s) -> (b, s, d).

        positions: (s,) or (b, s) absolute positions; default 0..s-1. With a KV cache pass
            ``torch.arange(cache_len, cache_len + s)`` so new tokens get their true positions.
        padding_mask: (b, s) bool, True at padding; those output rows are zeroed.
        checked: the ids are known to be in range (a validated token file); no per-call range check.
        """
        if isinstance(ids, Tensor) and ids.dim() == 1:
            raise TokvecValueError(
                f"ids must be (batch, seq); got 1-D shape {tuple(ids.shape)}: "
                f"add a batch dimension with ids.unsqueeze(0)"
            )
        x = self.token(ids, checked=checked)  # (b, s, d), a fresh tensor we may write into
        if self.positional.acts_on == "input":
            x = self.positional.add_(x, positions)
        if padding_mask is not None:
            if padding_mask.shape != ids.shape or padding_mask.dtype != torch.bool:
                raise TokvecValueError(
                    f"padding_mask must be a bool tensor of shape {tuple(ids.shape)} like ids, "
                    f"got {padding_mask.dtype} {tuple(padding_mask.shape)}"
                )
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        if self.training and self.dropout.p > 0:  # skip the call entirely at p = 0 (inference, benchmarks)
            x = self.dropout(x)
        return x
