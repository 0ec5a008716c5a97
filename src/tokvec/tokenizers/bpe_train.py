"""BPE training engine: Hugging Face ``tokenizers``' BpeTrainer (Rust), byte-level, converted to ranks.

Why this engine: it counts pre-tokenised words in parallel and merges with a priority queue, which is
what a home-made trainer would have to beat (benchmarks/bench_bpe.py measures it against
sentencepiece). Its output (vocab + merges, tokens spelled with GPT-2's byte->character map) becomes
tokvec's ranks: the 256 single bytes take ranks 0..255 by byte value, merged tokens follow in the
order the trainer made them, so "lowest rank first" (tiktoken) replays the trainer's merge order.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from ..errors import TokvecTypeError, TokvecValueError
from .interop import printable_to_bytes
from .patterns import for_oniguruma, resolve_pattern

MAX_TRAIN_VOCAB = 1 << 24  # 16.7 M ids: far above any real vocabulary, far below the trainer's u32 limits


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
    if vocab_size > MAX_TRAIN_VOCAB:
        raise TokvecValueError(
            f"vocab_size {vocab_size} is above {MAX_TRAIN_VOCAB:,}: no corpus yields that many merges (GPT-4o's "
            f"o200k has 200k tokens) and the trainer would abort; use e.g. 8192 to 100000")
    floor = 256 + len(specials)
    if vocab_size < floor:
        raise TokvecValueError(
            f"vocab_size {vocab_size} is below 256 + {len(specials)} special token(s) = {floor}: a byte-level "
            f"BPE holds all 256 bytes and the specials before any merge; use vocab_size >= {floor}"
        )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or not 0 <= min_frequency <= 2 ** 32 - 1:
        raise TokvecValueError(f"min_frequency must be an int in [0, {2 ** 32 - 1}], got {min_frequency!r}; "
                               f"2 (the default) merges any pair seen twice")
    return specials


def train_ranks(texts: Iterator[str], *, vocab_size: int, pattern: str, special_tokens: Sequence[str],
                min_frequency: int, allow_smaller: bool, what: str) -> tuple[dict[bytes, int], dict[str, int]]:
    """Train on ``texts``; return (ranks, special tokens with ids after the merges)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    specials = check_train_options(vocab_size, special_tokens, min_frequency)
    _, pat_str = resolve_pattern(pattern)
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(for_oniguruma(pat_str)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(specials), min_frequency=min_frequency,
                                  show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    seen = {"chars": 0}

    def counted(it: Iterator[str]) -> Iterator[str]:
        for text in it:
            if not isinstance(text, str):
                raise TokvecTypeError(f"training texts must be str, got {type(text).__name__}")
            seen["chars"] += len(text)
            yield text

    hf.train_from_iterator(counted(texts), trainer=trainer)
    if seen["chars"] == 0:
        raise TokvecValueError(f"{what} is empty: no text to learn merges from")
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
    reached = len(ranks) + len(specials)
    if reached < vocab_size and not allow_smaller:
        raise TokvecValueError(
            f"{what} ran out of merges at {reached} tokens (256 bytes + {len(ranks) - 256} merges + "
            f"{len(specials)} specials), short of vocab_size {vocab_size}: no pair occurs {max(min_frequency, 1)}+ "
            f"times any more. Use vocab_size <= {reached}, a larger corpus, a lower min_frequency, or "
            f"allow_smaller=True (CLI --allow-smaller) to keep the {reached}-token vocabulary"
        )
    n = len(ranks)
    return ranks, {tok: n + k for k, tok in enumerate(specials)}
