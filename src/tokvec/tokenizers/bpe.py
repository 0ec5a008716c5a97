"""Byte-level BPE: train on any corpus, encode with tiktoken's Rust core, load real vocabularies.

Every string is UTF-8 bytes, and every byte is a token, so nothing is ever unknown and any string
round-trips. A pre-tokenisation pattern (``gpt2``, ``cl100k``, ``o200k`` or a regex) cuts text into
pieces; inside a piece, adjacent tokens merge in rank order (lowest rank first)::

    "low lower" --pattern--> ["low", " lower"] --bytes--> [l,o,w] [ ,l,o,w,e,r] --merges--> ids

Ids are ranks: bytes and merged tokens take ``0 .. n_ranks-1``, special tokens come after them.

>>> tok = BPETokenizer.train_from_texts(["low lower lowest " * 50], vocab_size=263)
>>> tok.tokens(" lowest"), tok.tokens("lower")
([' lowest'], ['low', 'e', 'r'])
>>> tok.decode(tok.encode("naïve 我"))
'naïve 我'
"""

from __future__ import annotations

import codecs
import functools
import gc
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Iterator, Literal, Mapping, Sequence

from ..errors import FormatError, TokenIdError, TokvecTypeError, TokvecValueError
from .base import (
    StreamDecoder,
    Tokenizer,
    as_id_list,
    register_foreign_loader,
    register_named_tokenizer,
    register_tokenizer,
)
from .patterns import PATTERNS, resolve_pattern
from .tiktoken_names import ENCODING_NAMES

Special = Literal["all"] | Collection[str]
# encode_batch joins short texts with this private-use separator, encoded as an extra special token:
# tiktoken cuts text at special tokens before its regex runs, so nothing merges across two texts.
# (It has no border -- no prefix equal to a suffix -- so occurrences cannot overlap; a text that
# contains it is caught by counting.)
_BATCH_SEP = "\U000f0000tokvec-batch\U000f0001"
_BATCH_CHARS = 1 << 18  # characters of text per encode_batch chunk
# Ids (ranks and specials) stay below 2**32 (tiktoken's Rank is a u32).
MAX_ID = 2**32 - 2
MAX_GAPS = 1 << 16  # unassigned ids listed one by one up to this many


@register_tokenizer("bpe")
class BPETokenizer(Tokenizer):
    """Byte-level BPE over ``ranks`` (token bytes -> id), a pattern, and special tokens (str -> id)."""

    def __init__(
        self,
        ranks: Mapping[bytes, int],
        *,
        pattern: str = "cl100k",
        special_tokens: Mapping[str, int] | None = None,
        name: str = "tokvec-bpe",
        build_encoder: bool = True,
    ) -> None:
        """``build_encoder=False``: tiktoken's encoder (~0.1 s for 30k ranks) is built on first use."""
        self.pattern, self.pat_str = resolve_pattern(pattern)
        ranks = dict(ranks)
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise TokvecValueError(
                f"ranks lack {len(missing)} single bytes (e.g. {bytes([missing[0]])!r}); "
                f"byte-level BPE needs all 256 so that any text can be encoded"
            )
        specials = dict(special_tokens or {})
        bad = next((r for r in ranks.values() if type(r) is not int), None)
        if bad is not None and (isinstance(bad, bool) or not isinstance(bad, int)):
            raise TokvecTypeError(f"ranks must be ints, got {bad!r} ({type(bad).__name__})")
        taken = set(ranks.values())
        if len(taken) != len(ranks) or min(taken) < 0 or max(taken) > MAX_ID:
            raise TokvecValueError(
                f"ranks must be distinct ints in [0, {MAX_ID}] (got {len(ranks)} tokens but "
                f"{len(taken)} distinct ranks, lowest {min(taken)}, highest {max(taken)})"
            )
        for tok, i in specials.items():
            if not isinstance(tok, str) or not tok:
                raise TokvecValueError(f"special tokens must be non-empty strings, got {tok!r}")
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= MAX_ID:
                raise TokvecValueError(f"special token {tok!r} needs an int id in [0, {MAX_ID}], got {i!r}")
            if i in taken:
                raise TokvecValueError(f"special token {tok!r} has id {i}, already used by a merge or another special")
            taken.add(i)
        self._ranks = ranks
        self.trained_by: str | None = None  # "native", "rustbpe" or "hf" after train / train_from_texts
        self.special_tokens = specials
        self.name = name
        self._encoder = self._build_encoder() if build_encoder else None
        self._batch_enc = None  # built on first encode_batch
        self._lengths = None  # byte length of each rank, built on first encode_stretch
        self._vocab_size = max(taken) + 1
        # unassigned ids below vocab_size: listed when few; else the assigned ones are kept instead, so a
        # stray huge id in a file costs memory in proportion to the tokens, not to the id
        n_gaps = self._vocab_size - len(taken)
        self._gaps = frozenset(range(self._vocab_size)) - taken if 0 < n_gaps <= MAX_GAPS else frozenset()
        self._assigned = frozenset(taken) if n_gaps > MAX_GAPS else None
        self.pad_id = specials.get("<pad>")
        self.unk_id = None  # byte-level: nothing is unknown
        self.bos_id = specials.get("<bos>", specials.get("<|startoftext|>"))
        self.eos_id = specials.get("<eos>", specials.get("<|endoftext|>"))

    def _build_encoder(self):
        import tiktoken

        return tiktoken.Encoding(
            name=self.name, pat_str=self.pat_str, mergeable_ranks=self._ranks, special_tokens=self.special_tokens
        )

    @property
    def _enc(self):
        if self._encoder is None:
            self._encoder = self._build_encoder()
        return self._encoder

    # -- training --------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        files: str | os.PathLike | Iterable[str | os.PathLike],
        *,
        vocab_size: int,
        pattern: str = "cl100k",
        special_tokens: Sequence[str] = (),
        min_frequency: int = 2,
        encoding: str = "utf-8",
        allow_smaller: bool = False,
        progress: Callable[[int], None] | None = None,
        engine: str = "auto",
        on_merges: Callable[[int, int], None] | None = None,
    ) -> "BPETokenizer":
        """Learn merges from corpus ``files`` (paths, directories, glob patterns), streamed.

        ``vocab_size`` counts the 256 bytes, the merges and ``special_tokens`` (ids after the merges;
        they never take part in training). Merges are made only of pairs seen ``min_frequency``
        times or more. ``engine``: ``"native"`` (tokvec's trainer in C, 5-20x faster than HF),
        ``"rustbpe"`` (Rust, ~3x), ``"hf"`` (Hugging Face tokenizers' BpeTrainer) or ``"auto"``:
        native, or where it was not built (no C compiler at install) rustbpe, falling back to HF in
        the rare cases where rustbpe's merges cannot be cut exactly at ``min_frequency`` (see
        :mod:`tokvec.tokenizers.bpe_train`); the engine used is kept in ``tok.trained_by``. The
        trainer sees the text in pieces of at most 8192 characters (``textstream.bounded_texts``). ``progress(n)`` is called with the number of corpus
        bytes read (once per byte, even when HF re-reads after a fallback); ``on_merges(done, total)``
        as the merges are made (every percent). Deterministic for a given corpus, settings and engine.
        When the corpus runs out of pairs before ``vocab_size`` is reached, raises (saying how far
        it got) unless ``allow_smaller=True``.
        """
        from ..textstream import expand_corpus, iter_corpus_chunks
        from .bpe_train import check_engine, train_ranks

        check_engine(engine)
        paths = expand_corpus(files)
        reported = {"bytes": 0, "total": sum(p.stat().st_size for p in paths)}

        def once(n: int) -> None:  # a second pass over the files (fallback) is not progress
            if progress is not None and reported["bytes"] < reported["total"]:
                reported["bytes"] += n
                progress(n)

        def texts():
            # 64 KB chunks (the trainer cuts them into <= 8192-character texts); with no cut for 1 M
            # characters one is made anyway (training loses the pair across it; memory stays bounded)
            return (
                chunk
                for _, chunk in iter_corpus_chunks(
                    paths, encoding=encoding, progress=once, block_bytes=1 << 16, max_carry=1 << 20
                )
            )

        what = f"the corpus ({', '.join(map(str, paths[:3]))}{', ...' if len(paths) > 3 else ''})"
        ranks, specials, used = train_ranks(
            texts,
            vocab_size=vocab_size,
            pattern=pattern,
            special_tokens=special_tokens,
            min_frequency=min_frequency,
            allow_smaller=allow_smaller,
            what=what,
            engine=engine,
            on_merges=on_merges,
        )
        tok = cls(ranks, pattern=pattern, special_tokens=specials, build_encoder=not _pattern_checked(pattern, used))
        tok.trained_by = used
        return tok

    @classmethod
    def train_from_texts(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        pattern: str = "cl100k",
        special_tokens: Sequence[str] = (),
        min_frequency: int = 2,
        allow_smaller: bool = False,
        engine: str = "auto",
        on_merges: Callable[[int, int], None] | None = None,
    ) -> "BPETokenizer":
        """As :meth:`train`, on strings in memory (each string is one document). A one-shot iterator
        (a generator) cannot be read twice: with rustbpe (``engine="auto"`` without the native
        trainer) and ``min_frequency > 1`` it trains with HF directly; pass a list to get rustbpe."""
        from .bpe_train import check_engine, train_ranks

        check_engine(engine)
        if isinstance(texts, str):
            texts = [texts]
        reiterable = isinstance(texts, (list, tuple))
        once = iter(texts)
        source = (lambda: iter(texts)) if reiterable else (lambda: once)
        ranks, specials, used = train_ranks(
            source,
            vocab_size=vocab_size,
            pattern=pattern,
            special_tokens=special_tokens,
            min_frequency=min_frequency,
            allow_smaller=allow_smaller,
            what="the training texts",
            engine=engine,
            reiterable=reiterable,
            on_merges=on_merges,
        )
        tok = cls(ranks, pattern=pattern, special_tokens=specials, build_encoder=not _pattern_checked(pattern, used))
        tok.trained_by = used
        return tok

    # -- the Tokenizer interface -----------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """``max id + 1`` (ids that are neither a rank nor a special, if any, are invalid)."""
        return self._vocab_size

    @property
    def n_ranks(self) -> int:
        return len(self._ranks)

    @property
    def n_assigned(self) -> int:
        """Ids that are a token (ranks and specials); below vocab_size when the ids have gaps."""
        return len(self._ranks) + len(self.special_tokens)

    @property
    def text_vocab_size(self) -> int:
        """``max rank + 1``: plain text encodes to ranks only (specials are disallowed in it)."""
        return max(self._ranks.values()) + 1

    @property
    def ranks(self) -> dict[bytes, int]:
        """A copy of token bytes -> rank (= id)."""
        return dict(self._ranks)

    def _allowed(self, allowed_special: Special, disallowed_special: Special, text: str, where: str) -> frozenset:
        """Check ``text`` for disallowed special tokens; return the allowed set for tiktoken."""
        names = set(self.special_tokens)
        allowed = frozenset(names if allowed_special == "all" else allowed_special)
        unknown = allowed - names
        if unknown:
            raise TokvecValueError(
                f"allowed_special names {sorted(unknown)!r}, which are not special tokens of this "
                f"tokenizer (it has {sorted(names)!r})"
            )
        disallowed = names - allowed if disallowed_special == "all" else frozenset(disallowed_special)
        if disallowed:
            from tiktoken.core import _special_token_regex

            match = _special_token_regex(frozenset(disallowed)).search(text)
            if match:
                tok = match.group()
                raise TokvecValueError(
                    f"{where} contains the special token {tok!r} at character {match.start()}; special tokens "
                    f"are disallowed in ordinary text. Pass allowed_special={{{tok!r}}} (or 'all'; CLI "
                    f"--allow-special) to encode it as id {self.special_tokens[tok]}, or disallowed_special=() "
                    f"to encode it as plain text"
                )
        return allowed

    def encode(
        self, text: str, *, allowed_special: Special = frozenset(), disallowed_special: Special = "all"
    ) -> list[int]:
        """Token ids of ``text``. Text that spells a special token raises, unless it is in
        ``allowed_special`` (then it encodes as the special id) or left out of ``disallowed_special``
        (then it encodes as ordinary text) -- tiktoken's rules."""
        if not isinstance(text, str):
            raise TokvecTypeError(f"text must be str, got {type(text).__name__}")
        if not self.special_tokens:
            return self._enc.encode_ordinary(text)
        allowed = self._allowed(allowed_special, disallowed_special, text, "text")
        if not allowed:  # the same ids; tiktoken's special-aware path is measurably slower
            return self._enc.encode_ordinary(text)
        return self._enc.encode(text, allowed_special=allowed, disallowed_special=())

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of ``text`` with special-token spellings encoded as plain text."""
        if not isinstance(text, str):
            raise TokvecTypeError(f"text must be str, got {type(text).__name__}")
        return self._enc.encode_ordinary(text)

    def encode_to_numpy(
        self, text: str, *, allowed_special: Special = frozenset(), disallowed_special: Special = "all"
    ):
        """As :meth:`encode`, as a uint32 numpy array (no Python list in between)."""
        if not isinstance(text, str):
            raise TokvecTypeError(f"text must be str, got {type(text).__name__}")
        import numpy as np

        allowed = (
            self._allowed(allowed_special, disallowed_special, text, "text") if self.special_tokens else frozenset()
        )
        if not allowed:  # as in encode(): the ordinary path, then one list -> array copy (~2% of the time)
            return np.array(self._enc.encode_ordinary(text), dtype=np.uint32)
        return self._enc.encode_to_numpy(text, allowed_special=allowed, disallowed_special=())

    def encode_batch(
        self,
        texts: Iterable[str],
        *,
        allowed_special: Special = frozenset(),
        disallowed_special: Special = "all",
        num_threads: int | None = None,
    ) -> list[list[int]]:
        """Ids of each text, the same as ``[encode(t) for t in texts]``, fast for many short texts.

        Texts are joined into chunks of ~256k characters with a separator that is a special token
        of an internal encoding (so no merge crosses two texts), encoded on ``num_threads`` threads
        (default: CPU count), and the ids are split back at the separators.
        """
        import numpy as np

        texts = texts if isinstance(texts, list) else list(texts)
        if not texts:
            return []
        allowed = self._allowed(allowed_special, disallowed_special, "", "text") if self.special_tokens else frozenset()
        check = bool(self.special_tokens) and (disallowed_special != "all" or allowed != frozenset(self.special_tokens))
        enc, sep_id = self._batch_encoding()
        allowed_sep = allowed | {_BATCH_SEP}
        try:
            lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        except TypeError:
            bad = next(i for i, t in enumerate(texts) if not isinstance(t, str))
            raise TokvecTypeError(f"texts[{bad}] must be str, got {type(texts[bad]).__name__}") from None
        ends = np.cumsum(lengths + 1)  # [start, stop) groups of ~_BATCH_CHARS characters
        cuts = np.searchsorted(ends, np.arange(_BATCH_CHARS, int(ends[-1]), _BATCH_CHARS), side="right")
        bounds = [0, *sorted(set(cuts.tolist()) - {0, len(texts)}), len(texts)]
        groups = list(zip(bounds[:-1], bounds[1:]))

        def run(group: tuple[int, int]) -> list[list[int]]:
            items = texts[group[0] : group[1]]
            try:
                joined = _BATCH_SEP.join(items)
            except TypeError:
                bad = next(i for i, t in enumerate(items, start=group[0]) if not isinstance(t, str))
                raise TokvecTypeError(f"texts[{bad}] must be str, got {type(texts[bad]).__name__}") from None
            if check:  # one search over the chunk; on a hit, find the text and raise its error
                try:
                    self._allowed(allowed_special, disallowed_special, joined, "texts")
                except TokvecValueError:
                    for i, t in enumerate(items, start=group[0]):
                        self._allowed(allowed_special, disallowed_special, t, f"texts[{i}]")
                    raise
            if joined.count(_BATCH_SEP) != len(items) - 1:  # a text holds the separator itself
                return [enc.encode(t, allowed_special=allowed, disallowed_special=()) for t in items]
            arr = enc.encode_to_numpy(joined, allowed_special=allowed_sep, disallowed_special=())
            cuts = np.flatnonzero(arr == sep_id).tolist()
            ids = arr.tolist()
            return [ids[a:b] for a, b in zip([0] + [c + 1 for c in cuts], cuts + [len(ids)])]

        threads = num_threads or os.cpu_count() or 1
        # Many small lists at once: the cyclic GC would rescan them over and over (measured: 2x slower).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if threads == 1 or len(groups) == 1:
                parts = [run(g) for g in groups]
            else:
                with ThreadPoolExecutor(min(threads, len(groups))) as pool:
                    parts = list(pool.map(run, groups))
            return [ids for part in parts for ids in part]
        finally:
            if gc_was_enabled:
                gc.enable()

    def _batch_encoding(self):
        if self._batch_enc is None:
            import tiktoken

            sep_id = self._vocab_size
            enc = tiktoken.Encoding(
                name=f"{self.name}+batch",
                pat_str=self.pat_str,
                mergeable_ranks=self._ranks,
                special_tokens={**self.special_tokens, _BATCH_SEP: sep_id},
            )
            self._batch_enc = (enc, sep_id)
        return self._batch_enc

    def _check_ids(self, ids: Any) -> list[int]:
        ids = as_id_list(ids)
        if not ids:
            return ids
        odd = [i for i in ids[:1] if type(i) is not int] or [i for i in ids if type(i) is not int][:1]
        if odd:  # numpy/torch integer scalars become ints; anything else is refused here
            odd = odd[0]
            if isinstance(odd, bool) or not hasattr(odd, "__index__"):
                raise TokvecTypeError(f"token ids must be integers, got {odd!r} ({type(odd).__name__})")
            try:
                ids = [int(i.__index__()) for i in ids]
            except (AttributeError, TypeError):
                bad = next(i for i in ids if isinstance(i, bool) or not hasattr(i, "__index__"))
                raise TokvecTypeError(f"token ids must be integers, got {bad!r} ({type(bad).__name__})") from None
        try:
            lo, hi = min(ids), max(ids)
        except TypeError:
            bad = next(x for x in ids if not isinstance(x, int))
            raise TokvecTypeError(f"token ids must be integers, got {bad!r} ({type(bad).__name__})") from None
        bad = None
        if lo < 0 or hi >= self._vocab_size:
            bad = next(p for p, i in enumerate(ids) if not 0 <= i < self._vocab_size)
        elif self._gaps and not self._gaps.isdisjoint(ids):
            bad = next(p for p, i in enumerate(ids) if i in self._gaps)
        elif self._assigned is not None and not self._assigned.issuperset(ids):
            bad = next(p for p, i in enumerate(ids) if i not in self._assigned)
        if bad is not None:
            raise TokenIdError(
                f"token id {ids[bad]} at position {bad} is not a token of this tokenizer "
                f"(valid ids: 0..{self._vocab_size - 1}"
                f"{', minus ' + str(self._vocab_size - self.n_assigned) + ' unassigned' if self._vocab_size > self.n_assigned else ''}); "
                f"were these ids made by another tokenizer?"
            )
        if any(type(i) is not int for i in ids):
            bad_item = next(i for i in ids if type(i) is not int)
            if not hasattr(bad_item, "__index__") or isinstance(bad_item, bool):
                raise TokvecTypeError(f"token ids must be integers, got {bad_item!r} ({type(bad_item).__name__})")
            ids = [int(i) for i in ids]
        return ids

    def decode(self, ids: Sequence[int], *, errors: str = "replace") -> str:
        """Text of ``ids``; bytes that are not valid UTF-8 (a cut character) become U+FFFD."""
        return self._enc.decode(self._check_ids(ids), errors=errors)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The exact bytes of ``ids`` (``decode_bytes(encode(s)) == s.encode()``)."""
        return self._enc.decode_bytes(self._check_ids(ids))

    def token_bytes(self, text: str, **options: Any) -> list[bytes]:
        """The bytes of each token of ``text``."""
        return self._enc.decode_tokens_bytes(self.encode(text, **options))

    def tokens(self, text: str, **options: Any) -> list[str]:
        """Pieces of ``text``, one per token; a token that cuts a character shows its bytes as ``\\xNN``."""
        return [b.decode("utf-8", "backslashreplace") for b in self.token_bytes(text, **options)]

    def safe_cut(self, text: str) -> int:
        """The last index where ``text`` may be cut so that no token spans the cut, for the named
        patterns (gpt2, cl100k, o200k); 0 if none. A custom pattern promises nothing: 0, and its
        files are encoded whole (long stretches included: see :meth:`encode_stretch`).

        First choice: just before a space or newline that follows a letter (each pattern ends a
        letter run at whitespace and none looks behind, so the pieces, and the merges inside them,
        are the same on both sides). Failing that: just after a letter followed by anything but a
        letter, a mark or an apostrophe (a digit, punctuation: ``宅|，``), or after a digit followed
        by a non-digit -- every named pattern ends a letter piece, and a digit piece, there (o200k
        also after a lowercase letter followed by an uppercase one). A cut never splits the text of
        a special token."""
        if self.pattern == "custom":
            return 0
        from ..textstream import whitespace_cut

        at = self._guarded_cut(text, lambda t: whitespace_cut(t, str.isalpha))
        return at or self._guarded_cut(text, functools.partial(_piece_end_cut, pattern=self.pattern))

    def _guarded_cut(self, text: str, cut: Callable[[str], int]) -> int:
        longest = max(map(len, self.special_tokens), default=0)
        # a cut must leave room for a whole special token after it, so one cut off by the end of
        # this text (and completed by the next) is seen here; and room before it, so that one
        # that started before this text is seen too
        at = cut(text[: len(text) - max(longest - 1, 0)])
        while at and longest > 1:
            if at < longest - 1:
                return 0
            window = text[max(0, at - longest + 1) : at + longest - 1]
            start = max(0, at - longest + 1)
            spans = [
                m for s in self.special_tokens for m in _occurrences(window, s) if start + m < at < start + m + len(s)
            ]
            if not spans:
                break
            at = cut(text[:at])
        return at

    def encode_stretch(
        self,
        parts: Iterable[str],
        *,
        allowed_special: Special = frozenset(),
        disallowed_special: Special = "all",
        window_bytes: int = 0,
    ) -> Iterator[Any]:
        """The ids of ``"".join(parts)`` as uint32 arrays, the same as :meth:`encode_to_numpy` of the
        joined text, without holding it whole: for text with no :meth:`safe_cut` for megabytes.

        A long run of letters (one pre-tokenisation piece) is encoded in windows of ``window_bytes``
        (default 256 KB) that overlap and are joined where they agree (see
        :mod:`tokvec.tokenizers.longpiece`); other text, and any text under a custom pattern, is
        gathered and encoded whole. The text must start where a chunk may start (a file's start or
        a safe cut)."""
        from .longpiece import encode_stretch

        def encode(text: str):
            return self.encode_to_numpy(text, allowed_special=allowed_special, disallowed_special=disallowed_special)

        return encode_stretch(self, parts, encode, window=window_bytes)

    def _token_lengths(self):
        """Byte length of every rank (0 for unused ranks), as an int64 array; None when the ranks are
        too sparse for an array (then long stretches are encoded whole)."""
        if self._lengths is None:
            import numpy as np

            size = max(self._ranks.values()) + 1
            if size > 8 * len(self._ranks) + (1 << 16):
                return None
            lengths = np.zeros(size, dtype=np.int64)
            for token, rank in self._ranks.items():
                lengths[rank] = len(token)
            self._lengths = lengths
        return self._lengths

    def id_to_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(self._check_ids([token_id])[0])

    def stream_decoder(self) -> "BPEStreamDecoder":
        return BPEStreamDecoder(self)

    # -- saving and loading ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        from .interop import bytes_to_printable

        by_rank: list[str | None] = [None] * (max(self._ranks.values()) + 1)
        for token, rank in self._ranks.items():
            by_rank[rank] = bytes_to_printable(token)
        return {
            "pattern": self.pattern if self.pattern != "custom" else self.pat_str,
            "token_encoding": "gpt2-bytes-to-unicode",
            "tokens": by_rank,
            "special_tokens": dict(self.special_tokens),
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "tokenizer data", **options: Any) -> "BPETokenizer":
        from .._schema import Doc
        from .interop import printable_to_bytes

        doc = Doc(data, source)
        doc.missing(("pattern", "tokens", "special_tokens"))
        doc.str("token_encoding", choices=("gpt2-bytes-to-unicode",), default=None)
        pattern = doc.str("pattern", nonempty=True, max_len=10_000)
        tokens = doc.str_list("tokens", nullable_items=True, unique=True)
        if len(tokens) > MAX_ID + 1:
            raise doc.error("tokens", f"a list of at most {MAX_ID + 1} tokens", tokens)
        specials = doc.int_map("special_tokens", lo=0, hi=MAX_ID)
        ranks = {printable_to_bytes(t, where=f"{source}: token"): r for r, t in enumerate(tokens) if t is not None}
        try:
            return cls(ranks, pattern=pattern, special_tokens=specials, **options)
        except TokvecValueError as e:
            raise FormatError(f"{source}: {e}") from None

    def save_tiktoken(self, path: str | os.PathLike) -> None:
        """Write the ranks as a ``.tiktoken`` file (``tiktoken.load.load_tiktoken_bpe`` reads it).

        The file holds ranks only: the pattern and special tokens are not part of the format."""
        from .interop import write_tiktoken

        write_tiktoken(path, self._ranks)

    @classmethod
    def from_tiktoken(
        cls, path: str | os.PathLike, *, pattern: str | None = None, special_tokens: Mapping[str, int] | None = None
    ) -> "BPETokenizer":
        """Read a ``.tiktoken`` rank file. Pattern and specials default to tiktoken's for the file's
        name when it is one of tiktoken's encodings (``cl100k_base.tiktoken``: read from tiktoken's
        registry), else cl100k / none."""
        from .interop import read_tiktoken
        from .tiktoken_names import specials_for_file

        path = Path(path)
        known_pattern, known_specials = specials_for_file(path) or ("cl100k", {})
        ranks = read_tiktoken(path)
        if special_tokens is None:  # tiktoken's specials for that name, unless a rank already holds the id
            taken = set(ranks.values())
            special_tokens = {t: i for t, i in known_specials.items() if i not in taken}
        try:
            return cls(ranks, pattern=pattern or known_pattern, special_tokens=special_tokens, name=path.stem)
        except TokvecValueError as e:
            raise FormatError(f"{path}: {e}") from None

    @classmethod
    def from_tiktoken_name(cls, name: str) -> "BPETokenizer":
        """tiktoken's encoding ``name`` (``"cl100k_base"``, ...) from tiktoken's cache, never downloaded;
        see :mod:`tokvec.tokenizers.tiktoken_names`. ``load_tokenizer(name)`` calls this."""
        from .tiktoken_names import load_encoding

        spec = load_encoding(name)
        return cls(spec["mergeable_ranks"], pattern=spec["pat_str"], special_tokens=spec["special_tokens"], name=name)

    @classmethod
    def from_hf(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read a Hugging Face byte-level BPE ``tokenizer.json`` (GPT-2 style)."""
        from .._io import read_json
        from .interop import is_hf_tokenizer_json, read_hf_bpe

        path = Path(path)
        data = read_json(path)
        if not is_hf_tokenizer_json(data):
            raise FormatError(f"{path} is not a Hugging Face tokenizer.json (no 'model' section)")
        ranks, pat_str, specials = read_hf_bpe(path, data)
        return cls(ranks, pattern=pat_str, special_tokens=specials, name=path.stem)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, pattern={self.pattern!r}, "
            f"special_tokens={list(self.special_tokens)!r})"
        )


class BPEStreamDecoder(StreamDecoder):
    """Incremental decoding: bytes are held back until they form whole UTF-8 characters.

    >>> tok = BPETokenizer.train_from_texts(["ab"], vocab_size=256)
    >>> d = tok.stream_decoder(); ids = tok.encode("我")     # 3 byte-tokens
    >>> [d.push(i) for i in ids], d.flush()
    (['', '', '我'], '')
    """

    def __init__(self, tokenizer: BPETokenizer) -> None:
        super().__init__(tokenizer)
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, ids: Sequence[int] | int) -> str:
        return self._utf8.decode(self.tokenizer.decode_bytes([ids] if isinstance(ids, int) else ids))

    def flush(self) -> str:
        """Text held back at the end (a cut character becomes U+FFFD); the decoder can be reused."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text


def _pattern_checked(pattern: str, engine: str) -> bool:
    """Whether tiktoken's regex engine (fancy-regex) is known to take ``pattern``: a named one, or one
    rustbpe (the same engine) trained with. Then the encoder can wait until the first encode."""
    return engine == "rustbpe" or resolve_pattern(pattern)[0] != "custom"


def _piece_end_cut(text: str, pattern: str = "cl100k") -> int:
    """Index just after the last letter followed by a non-letter, non-mark, non-apostrophe, or digit
    followed by a non-digit (0 if none): every named pattern ends a piece there. o200k also ends a
    piece at a lowercase letter followed by an uppercase or titlecase one.

    >>> _piece_end_cut("秦川雄帝宅，函谷"), _piece_end_cut("x12345"), _piece_end_cut("don't")
    (5, 1, 0)
    """
    m = _piece_end_regex(pattern == "o200k").search(text)
    return m.end() if m else 0


@functools.cache
def _piece_end_regex(case_change: bool):
    import regex

    ends = r"\p{L}(?=[^\p{L}\p{M}'\u2019])|\p{N}(?=\P{N})"
    return regex.compile("(?r)" + ends + (r"|\p{Ll}(?=[\p{Lu}\p{Lt}])" if case_change else ""))


def _occurrences(text: str, sub: str) -> list[int]:
    out, i = [], text.find(sub)
    while i >= 0:
        out.append(i)
        i = text.find(sub, i + 1)
    return out


def _load_foreign(path: Path, data: Any) -> BPETokenizer | None:
    from .interop import is_hf_tokenizer_json, looks_like_tiktoken, read_hf_bpe

    if data is None:
        return BPETokenizer.from_tiktoken(path) if looks_like_tiktoken(path) else None
    if is_hf_tokenizer_json(data):
        ranks, pat_str, specials = read_hf_bpe(path, data)
        return BPETokenizer(ranks, pattern=pat_str, special_tokens=specials, name=path.stem)
    return None


register_foreign_loader(_load_foreign)
for _name in ENCODING_NAMES:
    register_named_tokenizer(_name, lambda name=_name: BPETokenizer.from_tiktoken_name(name))
__all__ = ["BPETokenizer", "BPEStreamDecoder", "PATTERNS"]
