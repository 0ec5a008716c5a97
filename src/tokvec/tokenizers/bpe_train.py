"""BPE training engines, byte-level, converted to tiktoken ranks.

Three engines, chosen by ``engine=``:

- ``"native"``: tokvec's own trainer in C (``_native/``: ``train.c``, the pre-tokeniser
  ``pretok.c``), built by ``pip install`` when a C compiler is present. It splits the named patterns
  (gpt2, cl100k, o200k) by hand, exactly as the ``regex`` module does (tests check it), and a custom
  pattern with the ``regex`` module; then it makes rustbpe's merges (most frequent pair first, ties
  to the lower pair of ids: on the same pieces, identical ranks, tested) and stops exactly at
  ``min_frequency``, as HF does. Single-threaded; 5-20x faster than HF's trainer on the repo's
  corpora (benchmarks/bench_bpe.py, docs/benchmarks.md).
- ``"rustbpe"``: Karpathy's rustbpe (Rust; counts pre-tokenised pieces in parallel, merges with a
  lazily refreshed heap, ties broken by the lower pair of ids). It splits with the same regex engine
  as tiktoken (fancy-regex), so the pattern is used as is. It has no ``min_frequency``: it merges
  while any pair occurs at all, and reports the count of the pair it merged every percent of the
  merges (through Python's logging). Because that count never grows from one merge to the next, the
  merges of pairs seen ``min_frequency`` times are a prefix; it is cut off exactly
  (:func:`_min_frequency_cut`): between the last report >= ``min_frequency`` and the first one
  below, the counts are recovered from the corpus encoded again.
- ``"hf"``: Hugging Face ``tokenizers``' BpeTrainer (Rust), which stops exactly at ``min_frequency``.
- ``"auto"`` (default): native; where it was not built (no C compiler at install), rustbpe; HF when
  neither is there, or in the rare case where rustbpe's cut is not certain (a pair of one token
  twice right at the cut, whose overlaps hide its count; texts that cannot be read twice; a token
  made by two different merges).

Every text reaches the trainer in parts of at most 8192 characters (:func:`tokvec.textstream.bounded_texts`,
cut where no piece spans the cut when it can be): a file without whitespace is then not one piece
whose every byte is held and rewritten at every merge. Only pairs across a forced cut are lost.

Special tokens never take part in training in any engine: they get the ids after the merges.
Ranks: the 256 single bytes take ranks 0..255 by byte value, merged tokens follow in the order the
trainer made them, so "lowest rank first" (tiktoken) replays the trainer's merge order. Should two
merges make the same bytes (``"a"+"bc"`` after ``"ab"+"c"``; we believe this rule never does, see
``_native/train.c``), native and HF give the second one the first one's id, so each byte string has
one rank.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from typing import Callable, Iterator, Sequence

from ..errors import TokvecTypeError, TokvecValueError
from ..textstream import bounded_texts
from .interop import printable_to_bytes
from .patterns import for_oniguruma, resolve_pattern

MAX_TRAIN_VOCAB = 1 << 24  # 16.7 M ids: far above any real vocabulary, far below the trainer's u32 limits
ENGINES = ("auto", "native", "rustbpe", "hf")
MergeProgress = Callable[[int, int], None]  # (merges done, merges asked for)
TextSource = Callable[[], Iterator[str]]  # a fresh iterator over the training texts on each call


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise TokvecValueError(f"unknown BPE training engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return engine


def check_train_options(vocab_size: int, special_tokens: Sequence[str], min_frequency: int) -> list[str]:
    if isinstance(special_tokens, str):
        raise TokvecValueError(
            f"special_tokens must be a list of strings, got the string {special_tokens!r}; write [{special_tokens!r}]"
        )
    specials = list(special_tokens)
    for tok in specials:
        if not isinstance(tok, str) or not tok:
            raise TokvecValueError(f"special tokens must be non-empty strings, got {tok!r}")
    dupes = sorted({t for t in specials if specials.count(t) > 1})
    if dupes:
        raise TokvecValueError(f"special token(s) {dupes!r} listed twice")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TokvecTypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size > MAX_TRAIN_VOCAB:
        raise TokvecValueError(
            f"vocab_size {vocab_size} is above {MAX_TRAIN_VOCAB:,}: no corpus yields that many merges (GPT-4o's "
            f"o200k has 200k tokens) and the trainer would abort; use e.g. 8192 to 100000"
        )
    floor = 256 + len(specials)
    if vocab_size < floor:
        raise TokvecValueError(
            f"vocab_size {vocab_size} is below 256 + {len(specials)} special token(s) = {floor}: a byte-level "
            f"BPE holds all 256 bytes and the specials before any merge; use vocab_size >= {floor}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or not 0 <= min_frequency <= 2**32 - 1:
        raise TokvecValueError(
            f"min_frequency must be an int in [0, {2**32 - 1}], got {min_frequency!r}; "
            f"2 (the default) merges any pair seen twice"
        )
    return specials


def train_ranks(
    texts: TextSource,
    *,
    vocab_size: int,
    pattern: str,
    special_tokens: Sequence[str],
    min_frequency: int,
    allow_smaller: bool,
    what: str,
    engine: str = "auto",
    reiterable: bool = True,
    on_merges: MergeProgress | None = None,
) -> tuple[dict[bytes, int], dict[str, int], str]:
    """Train on the texts ``texts()`` yields; return (ranks, special tokens with ids after the merges,
    the engine that made the ranks).

    ``reiterable=False``: ``texts()`` can be read once only, so "auto" cannot fall back after a
    rustbpe run; it then goes straight to HF when ``min_frequency > 1`` could matter.
    """
    specials = check_train_options(vocab_size, special_tokens, min_frequency)
    check_engine(engine)
    name, pat_str = resolve_pattern(pattern)
    n_ranks = vocab_size - len(specials)
    seen = {"chars": 0}

    def counted(it: Iterator[str]) -> Iterator[str]:
        for text in it:
            if not isinstance(text, str):
                raise TokvecTypeError(f"training texts must be str, got {type(text).__name__}")
            seen["chars"] += len(text)
            # no piece longer than MAX_TRAIN_TEXT characters: a 50 MB run without whitespace would be
            # one word to hold (4 bytes a byte) and to rewrite at every merge
            yield from bounded_texts(text)

    ranks, used = None, "hf"
    if engine == "native" or (engine == "auto" and _have_native()):
        if not _have_native():
            raise TokvecValueError(
                "the native BPE trainer is not built (it needs a C compiler when tokvec is installed: "
                "pip install -e . with gcc or clang present). Use engine='auto' (CLI --engine auto), which "
                "falls back to rustbpe or HF"
            )
        ranks, used = _train_native(counted(texts()), n_ranks, name, pat_str, min_frequency, on_merges), "native"
    elif engine == "rustbpe" or (engine == "auto" and (reiterable or min_frequency <= 1) and _have_rustbpe()):
        recount = (lambda: counted(texts())) if reiterable else None
        ranks, why = _train_rustbpe(counted(texts()), n_ranks, pat_str, min_frequency, on_merges, recount)
        if ranks is not None:
            used = "rustbpe"
        elif engine == "rustbpe":
            raise TokvecValueError(
                f"the rustbpe engine cannot train this tokenizer: {why}. Use engine='hf' "
                f"(CLI --engine hf) or 'auto', which falls back to HF by itself"
            )
        elif seen["chars"] == 0:
            raise TokvecValueError(f"{what} is empty: no text to learn merges from")
        else:
            seen["chars"] = 0
    if ranks is None:
        ranks = _train_hf(counted(texts()), n_ranks, pat_str, min_frequency)
    if seen["chars"] == 0:
        raise TokvecValueError(f"{what} is empty: no text to learn merges from")
    reached = len(ranks) + len(specials)
    if reached < vocab_size and not allow_smaller:
        raise TokvecValueError(
            f"{what} ran out of merges at {reached} tokens (256 bytes + {len(ranks) - 256} merges + "
            f"{len(specials)} specials), short of vocab_size {vocab_size}: no pair occurs {max(min_frequency, 1)}+ "
            f"times any more. Use vocab_size <= {reached} (tokvec train: --tokenizer bpe:{reached}), a larger "
            f"corpus, a lower min_frequency, or allow_smaller=True (tokvec tokenizer train --allow-smaller) to keep "
            f"the {reached}-token vocabulary"
        )
    n = len(ranks)
    return ranks, {tok: n + k for k, tok in enumerate(specials)}, used


def auto_engine() -> str:
    """The engine ``engine="auto"`` trains with here (before any fallback): ``"native"`` where the C
    trainer was built, else ``"rustbpe"`` where it is installed, else ``"hf"``."""
    return "native" if _have_native() else "rustbpe" if _have_rustbpe() else "hf"


def _have_native() -> bool:
    return _importable("tokvec.tokenizers._bpe_native")


def _have_rustbpe() -> bool:
    return _importable("rustbpe")


def _importable(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _train_native(
    texts: Iterator[str],
    n_ranks: int,
    name: str,
    pat_str: str,
    min_frequency: int,
    on_merges: MergeProgress | None,
) -> dict[bytes, int]:
    """The C trainer's ranks (``_native/train.c``): merges of pairs seen ``min_frequency`` times or
    more, until ``n_ranks`` tokens. ``name``: the pattern's name, or "custom" for ``pat_str`` (as
    :func:`~tokvec.tokenizers.patterns.resolve_pattern` gives them). Memory: the distinct pieces, then
    the words made of them."""
    from . import _bpe_native as native

    trainer = native.Trainer()
    code = {"gpt2": native.GPT2, "cl100k": native.CL100K, "o200k": native.O200K}.get(name)
    try:
        if code is not None:
            for text in texts:
                trainer.add_text(text, code)
        else:  # a custom pattern: split with the regex module, count here
            import collections

            import regex

            split, counts = regex.compile(pat_str).findall, collections.Counter()
            for text in texts:
                counts.update(split(text))
            for piece, count in counts.items():
                trainer.add_piece(piece.encode("utf-8"), count)
    except UnicodeEncodeError as e:
        raise TokvecValueError(
            f"a training text holds {e.object[e.start : e.end]!r} at character {e.start}, a lone surrogate that "
            f"is not text (no UTF-8 bytes to learn from); decode the corpus with errors='strict' or remove it"
        ) from None
    tokens = [bytes([b]) for b in range(256)]
    wanted = max(n_ranks - 256, 0)
    step = max(wanted // 100, 1)  # progress every percent of the merges
    while len(tokens) < n_ranks:
        made = trainer.merge(min(step, n_ranks - len(tokens)), max(min_frequency, 1))
        if not made:
            break
        for token, left, right, _ in made:
            if token == len(tokens):  # else: bytes another merge made already (same id)
                tokens.append(tokens[left] + tokens[right])
        if on_merges is not None:
            on_merges(len(tokens) - 256, wanted)
    return {token: rank for rank, token in enumerate(tokens)}


# rustbpe's log lines (rustbpe 0.1, src/lib.rs): one per percent of the merges, and one at the end.
_PROGRESS = re.compile(r"Progress: \d+% \((\d+)/(\d+) merges\).*\(frequency: (\d+)\)")
_FINISHED = re.compile(r"Finished training: (\d+) merges completed")


class _RustbpeReports(logging.Handler):
    """Reads rustbpe's progress lines: (merges done, count of the pair merged last) every percent."""

    def __init__(self, on_merges: MergeProgress | None) -> None:
        super().__init__(logging.INFO)
        self.on_merges = on_merges
        self.counts: list[tuple[int, int]] = []  # (merges done, count of merge number `done`)
        self.finished: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if m := _PROGRESS.search(message):
            done, total, count = map(int, m.groups())
            self.counts.append((done, count))
            if self.on_merges is not None:
                self.on_merges(done, total)
        elif m := _FINISHED.search(message):
            self.finished = int(m.group(1))


def _train_rustbpe(
    texts: Iterator[str],
    n_ranks: int,
    pat_str: str,
    min_frequency: int,
    on_merges: MergeProgress | None,
    recount: Callable[[], Iterator[str]] | None = None,
) -> tuple[dict[bytes, int] | None, str]:
    """rustbpe's ranks, cut at the first merge seen fewer than ``min_frequency`` times; or (None, why)
    when that cut cannot be found exactly. ``recount()`` reads the texts again (for the cut)."""
    try:
        import rustbpe
    except ImportError:
        return None, "rustbpe is not installed (pip install rustbpe)"
    reports = _RustbpeReports(on_merges)
    logger = logging.getLogger("rustbpe")  # pyo3-log forwards rustbpe's `log` lines here
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # its lines are ours to read, not the user's log to fill
    logger.addHandler(reports)
    try:
        trainer = rustbpe.Tokenizer()
        try:
            # buffer_size: texts handed to the Rust side per refill (<= MAX_TRAIN_TEXT chars each: <= 32 MB)
            trainer.train_from_iterator(texts, n_ranks, buffer_size=1024, pattern=pat_str)
        except ValueError as e:
            if "regex" not in str(e).lower():
                raise
            return None, f"its regex engine rejects the pattern ({e})"
    finally:
        logger.removeHandler(reports)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    by_rank = [bytes(token) for token, _ in sorted(trainer.get_mergeable_ranks(), key=lambda p: p[1])]
    made = len(by_rank) - 256
    if made > 0 and min_frequency > 1:
        if reports.finished != made:
            return None, "its reports do not say how many merges it made, so min_frequency cannot be checked"
        keep, why = _min_frequency_cut(by_rank, reports.counts, min_frequency, pat_str, recount)
        if keep is None:
            return None, why
        del by_rank[256 + keep :]
    ranks = {token: rank for rank, token in enumerate(by_rank)}
    if len(ranks) != len(by_rank):
        return None, "it made the same token from two different merges"
    return ranks, ""


def _min_frequency_cut(
    by_rank: list[bytes],
    reports: list[tuple[int, int]],
    min_frequency: int,
    pat_str: str,
    recount: Callable[[], Iterator[str]] | None,
) -> tuple[int | None, str]:
    """How many of rustbpe's merges were of pairs seen ``min_frequency`` times or more.

    The count of the pair merged never grows from one merge to the next (a merge only removes
    pairs, or makes pairs with the new token that are no more frequent than it), so those merges are
    a prefix, the one a trainer stopping at ``min_frequency`` (HF's) makes. rustbpe reports the
    count every percent of the merges: the cut lies after the last report >= ``min_frequency`` and
    before the first one below. Inside that window the counts are found from the corpus encoded
    with the merges up to the window's end: merge j was applied (occurrences of token j, plus those
    that a later merge in the window used up) times, which is its pair's count unless the pair is
    one token twice (``aa`` in ``aaa`` counts 2 pairs, merges once): then (None, why).
    """
    made = len(by_rank) - 256
    reported = {done - 1: count for done, count in reports}  # merge index -> its pair's count
    lo = max((j + 1 for j, count in reported.items() if count >= min_frequency), default=0)  # merges < lo: kept
    hi = min((j for j, count in reported.items() if count < min_frequency), default=made)  # merge hi: not kept
    if hi <= lo:
        return lo, ""
    if recount is None:
        return (
            None,
            "the texts can be read once only, so the merges seen fewer than min_frequency times cannot be found",
        )
    import numpy as np
    import tiktoken

    # the window's ends are merges of known count (lo - 1 and hi): they check the method on this corpus
    first, top = max(lo - 1, 0), min(hi + 1, made)
    head = {token: rank for rank, token in enumerate(by_rank[: 256 + top])}
    if len(head) != 256 + top:
        return None, "it made the same token from two different merges"
    pairs = {j: _pair_of(by_rank[256 + j], head, 256 + j) for j in range(first, top)}
    if None in pairs.values():
        return None, "a token of its is not what BPE makes of its bytes, so its merge counts cannot be recovered"
    enc = tiktoken.Encoding(name="tokvec-min-frequency", pat_str=pat_str, mergeable_ranks=head, special_tokens={})
    freq = np.zeros(256 + top, dtype=np.int64)
    texts = recount()
    while batch := list(itertools.islice(texts, 256)):  # <= 2 M characters at a time, on every core
        for ids in enc.encode_ordinary_batch(batch, num_threads=os.cpu_count() or 1):
            freq += np.bincount(ids, minlength=256 + top)
    applied = {j: int(freq[256 + j]) for j in range(first, top)}
    for j in range(top - 1, first - 1, -1):  # later merges first: each adds what it used up to its parts
        for part in pairs[j]:
            if part - 256 >= first:
                applied[part - 256] += applied[j]
    for j in (first, hi):
        a, b = pairs.get(j, (0, 0))
        if j in reported and j in applied and a != b and applied[j] != reported[j]:
            return None, (
                f"its merge {j} was reported seen {reported[j]} times but is applied {applied[j]} times "
                f"on the corpus encoded again"
            )
    for j in range(lo, hi):
        if applied[j] < min_frequency:
            a, b = pairs[j]
            if a == b:
                return None, (
                    f"its merge {j} ({by_rank[256 + j]!r}, a token twice) was applied {applied[j]} time(s), "
                    f"and overlapping pairs make its count unknown"
                )
            return j, ""
    return hi, ""


def _pair_of(token: bytes, ranks: dict[bytes, int], rank: int) -> tuple[int, int] | None:
    """The two tokens BPE joined to make ``token`` (rank ``rank``): its bytes merged in rank order,
    with ranks below ``rank`` only, end as exactly two parts (None if they do not).

    >>> _pair_of(b"abc", {**{bytes([i]): i for i in range(256)}, b"bc": 256}, 257)
    (97, 256)
    """
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best = min(range(len(parts) - 1), key=lambda i: ranks.get(parts[i] + parts[i + 1], rank))
        if ranks.get(parts[best] + parts[best + 1], rank) >= rank:
            return None
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return (ranks[parts[0]], ranks[parts[1]]) if len(parts) == 2 else None


def _train_hf(texts: Iterator[str], n_ranks: int, pat_str: str, min_frequency: int) -> dict[bytes, int]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(for_oniguruma(pat_str)), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=n_ranks,
        min_frequency=min_frequency,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(texts, trainer=trainer)
    vocab = hf.get_vocab()
    ranks: dict[bytes, int] = {}
    merged = sorted((i, t) for t, i in vocab.items() if len(t) > 1 or i >= 256)
    for t, i in vocab.items():
        if len(t) == 1 and i < 256:
            ranks[printable_to_bytes(t)] = printable_to_bytes(t)[0]
    if len(ranks) != 256:  # pragma: no cover - the initial alphabet guarantees it
        raise RuntimeError(f"HF trainer returned {len(ranks)} single bytes, expected 256")
    for _, t in merged:
        ranks[printable_to_bytes(t)] = len(ranks)
    return ranks
