"""BPE training engines, byte-level, converted to tiktoken ranks.

Two engines, chosen by ``engine=``:

- ``"rustbpe"``: Karpathy's rustbpe (Rust; counts pre-tokenised pieces in parallel, merges with a
  lazily refreshed heap, ties broken by the lower pair of ids). It splits with the same regex engine
  as tiktoken (fancy-regex), so the pattern is used as is. Measured 2.4-3.2x faster than HF's
  trainer on the repo's corpora (benchmarks/bench_bpe.py, docs/benchmarks.md). It has no
  ``min_frequency``: it merges while any pair occurs at all. Because the best pair's count never
  grows from one merge to the next (a merge only removes pairs or creates pairs rarer than itself),
  "every merge had count >= min_frequency" holds iff the *last* merge had. rustbpe reports each
  percent of its merges, with the pair's count, through Python's logging; the last report decides.
- ``"hf"``: Hugging Face ``tokenizers``' BpeTrainer (Rust), which stops exactly at ``min_frequency``.
- ``"auto"`` (default): rustbpe; when its last merge was rarer than ``min_frequency`` (a small corpus
  or a large vocabulary: the corpus ran out of frequent pairs) or rustbpe is not installed, the
  result is thrown away and HF trains instead, so ``min_frequency`` always holds.

Special tokens never take part in training in either engine: they get the ids after the merges.
Ranks: the 256 single bytes take ranks 0..255 by byte value, merged tokens follow in the order the
trainer made them, so "lowest rank first" (tiktoken) replays the trainer's merge order.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Iterator, Sequence

from ..errors import TokvecTypeError, TokvecValueError
from .interop import printable_to_bytes
from .patterns import for_oniguruma, resolve_pattern

ENGINES = ("auto", "rustbpe", "hf")
MergeProgress = Callable[[int, int], None]  # (merges done, merges asked for)
TextSource = Callable[[], Iterator[str]]  # a fresh iterator over the training texts on each call


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise TokvecValueError(f"unknown BPE training engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return engine


def check_train_options(vocab_size: int, special_tokens: Sequence[str], min_frequency: int) -> list[str]:
    if isinstance(special_tokens, str):
        raise TokvecValueError(f"special_tokens must be a list of strings, got the string {special_tokens!r}; "
                               f"write [{special_tokens!r}]")
    specials = list(special_tokens)
    for tok in specials:
        if not isinstance(tok, str) or not tok:
            raise TokvecValueError(f"special tokens must be non-empty strings, got {tok!r}")
    dupes = sorted({t for t in specials if specials.count(t) > 1})
    if dupes:
        raise TokvecValueError(f"special token(s) {dupes!r} listed twice")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TokvecTypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
    floor = 256 + len(specials)
    if vocab_size < floor:
        raise TokvecValueError(
            f"vocab_size {vocab_size} is below 256 + {len(specials)} special token(s) = {floor}: a byte-level "
            f"BPE holds all 256 bytes and the specials before any merge; use vocab_size >= {floor}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 0:
        raise TokvecValueError(f"min_frequency must be an int >= 0, got {min_frequency!r}")
    return specials


def train_ranks(texts: TextSource, *, vocab_size: int, pattern: str, special_tokens: Sequence[str],
                min_frequency: int, allow_smaller: bool, what: str, engine: str = "auto",
                reiterable: bool = True, on_merges: MergeProgress | None = None
                ) -> tuple[dict[bytes, int], dict[str, int], str]:
    """Train on the texts ``texts()`` yields; return (ranks, special tokens with ids after the merges,
    the engine that made the ranks).

    ``reiterable=False``: ``texts()`` can be read once only, so "auto" cannot fall back after a
    rustbpe run; it then goes straight to HF when ``min_frequency > 1`` could matter.
    """
    specials = check_train_options(vocab_size, special_tokens, min_frequency)
    check_engine(engine)
    _, pat_str = resolve_pattern(pattern)
    n_ranks = vocab_size - len(specials)
    seen = {"chars": 0}

    def counted(it: Iterator[str]) -> Iterator[str]:
        for text in it:
            if not isinstance(text, str):
                raise TokvecTypeError(f"training texts must be str, got {type(text).__name__}")
            seen["chars"] += len(text)
            yield text

    ranks, used = None, "hf"
    if engine == "rustbpe" or (engine == "auto" and (reiterable or min_frequency <= 1) and _have_rustbpe()):
        ranks, why = _train_rustbpe(counted(texts()), n_ranks, pat_str, min_frequency, on_merges)
        if ranks is not None:
            used = "rustbpe"
        elif engine == "rustbpe":
            raise TokvecValueError(f"the rustbpe engine cannot train this tokenizer: {why}. Use engine='hf' "
                                   f"(CLI --engine hf) or 'auto', which falls back to HF by itself")
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
            f"times any more. Use vocab_size <= {reached}, a larger corpus, a lower min_frequency, or "
            f"allow_smaller=True (CLI --allow-smaller) to keep the {reached}-token vocabulary"
        )
    n = len(ranks)
    return ranks, {tok: n + k for k, tok in enumerate(specials)}, used


def _have_rustbpe() -> bool:
    try:
        import rustbpe  # noqa: F401
    except ImportError:
        return False
    return True


# rustbpe's log lines (rustbpe 0.1, src/lib.rs): one per percent of the merges, and one at the end.
_PROGRESS = re.compile(r"Progress: \d+% \((\d+)/(\d+) merges\).*\(frequency: (\d+)\)")
_FINISHED = re.compile(r"Finished training: (\d+) merges completed")


class _RustbpeReports(logging.Handler):
    """Reads rustbpe's progress lines: merges done, and the count of the pair merged last."""

    def __init__(self, on_merges: MergeProgress | None) -> None:
        super().__init__(logging.INFO)
        self.on_merges = on_merges
        self.last_count: int | None = None
        self.finished: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if m := _PROGRESS.search(message):
            done, total, count = map(int, m.groups())
            self.last_count = count
            if self.on_merges is not None:
                self.on_merges(done, total)
        elif m := _FINISHED.search(message):
            self.finished = int(m.group(1))


def _train_rustbpe(texts: Iterator[str], n_ranks: int, pat_str: str, min_frequency: int,
                   on_merges: MergeProgress | None) -> tuple[dict[bytes, int] | None, str]:
    """rustbpe's ranks, or (None, why) when they do not honour ``min_frequency`` exactly."""
    try:
        import rustbpe
    except ImportError:
        return None, "rustbpe is not installed (pip install rustbpe)"
    n_merges = n_ranks - 256
    reports = _RustbpeReports(on_merges)
    logger = logging.getLogger("rustbpe")  # pyo3-log forwards rustbpe's `log` lines here
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # its lines are ours to read, not the user's log to fill
    logger.addHandler(reports)
    try:
        trainer = rustbpe.Tokenizer()
        try:
            # buffer_size: texts handed to the Rust side per refill (file chunks are 64 KB: <= 64 MB held)
            trainer.train_from_iterator(texts, n_ranks, buffer_size=1024, pattern=pat_str)
        except ValueError as e:
            if "regex" not in str(e).lower():
                raise
            return None, f"its regex engine rejects the pattern ({e})"
    finally:
        logger.removeHandler(reports)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    pairs = trainer.get_mergeable_ranks()
    made = len(pairs) - 256
    if made > 0 and min_frequency > 1:
        # the last report is the last merge only when all merges were made (rustbpe reports at 100%)
        if made < n_merges or reports.finished != made:
            return None, (f"it ran out of pairs after {made} of {n_merges} merges, and its reports do not "
                          f"say whether the last ones occurred min_frequency {min_frequency} times")
        if reports.last_count is None:
            return None, "it did not report its merge counts, so min_frequency cannot be checked"
        if reports.last_count < min_frequency:
            return None, (f"its last merges were pairs seen {reports.last_count} time(s), fewer than "
                          f"min_frequency {min_frequency}")
    ranks = {bytes(token): rank for token, rank in pairs}
    if len(ranks) != len(pairs) or sorted(ranks.values()) != list(range(len(pairs))):
        return None, "it made the same token from two different merges"
    return ranks, ""


def _train_hf(texts: Iterator[str], n_ranks: int, pat_str: str, min_frequency: int) -> dict[bytes, int]:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(for_oniguruma(pat_str)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=n_ranks, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
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
