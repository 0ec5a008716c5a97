"""BPE training engines: rustbpe (default) against HF's BpeTrainer, min_frequency, specials, progress."""

from __future__ import annotations

import random

import pytest
import tiktoken

from tokvec import BPETokenizer
from tokvec.errors import TokvecTypeError, TokvecValueError

pytest.importorskip("rustbpe")

# Pair counts all distinct for the first merges (no ties), so both trainers must agree.
PINNED_CORPUS = "".join(f" {w}" * c for w, c in {"the": 60, "then": 41, "there": 29, "other": 17, "mother": 11,
                                                   "moth": 7, "three": 5, "thee": 3}.items())
# The first 12 merges HF tokenizers 0.22's BpeTrainer makes on PINNED_CORPUS (cl100k pattern,
# min_frequency 1), computed once with engine="hf" and written here.
PINNED_MERGES = [b"th", b"the", b" the", b" then", b"re", b" there", b"othe", b"other", b" m", b" other",
                 b" mother", b"oth"]


def merges(tok: BPETokenizer) -> list[bytes]:
    return [b for b, _ in sorted(((b, i) for b, i in tok.ranks.items() if i >= 256), key=lambda x: x[1])]


def synthetic_corpus(n_words: int = 40_000, seed: int = 0) -> str:
    """Zipf-distributed made-up words with punctuation, digits and Chinese: a corpus with a long tail."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "an", "el", "or", "un", "ch", "st", "ing"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    hanzi = "床前明月光疑是地上霜举头望思故乡春眠不觉晓处闻啼鸟"
    weights = [1 / (k + 1) for k in range(len(words))]
    out = []
    for i, w in enumerate(rng.choices(words, weights, k=n_words)):
        out.append(w.capitalize() if i % 11 == 0 else w)
        if i % 9 == 0:
            out.append(rng.choice([",", ".", "!", " 19", " 2024"]))
        if i % 17 == 0:
            out.append(" " + "".join(rng.choice(hanzi) for _ in range(rng.randint(2, 7))) + "。\n")
        out.append(" ")
    return "".join(out)


@pytest.fixture(scope="module")
def corpus() -> str:
    return synthetic_corpus()


def test_first_merges_match_hf_trainer():
    for engine in ("rustbpe", "hf"):
        tok = BPETokenizer.train_from_texts([PINNED_CORPUS], vocab_size=256 + 12, engine=engine, min_frequency=1)
        assert tok.trained_by == engine
        assert merges(tok) == PINNED_MERGES, engine


def test_rustbpe_deterministic_and_compression_within_1pct_of_hf(corpus):
    fast = BPETokenizer.train_from_texts([corpus], vocab_size=1024, engine="rustbpe")
    again = BPETokenizer.train_from_texts([corpus], vocab_size=1024, engine="rustbpe")
    hf = BPETokenizer.train_from_texts([corpus], vocab_size=1024, engine="hf")
    assert fast.trained_by == "rustbpe" and hf.trained_by == "hf"
    assert fast.ranks == again.ranks and fast.fingerprint() == again.fingerprint()
    assert fast.vocab_size == hf.vocab_size == 1024
    n_fast, n_hf = len(fast.encode(corpus)), len(hf.encode(corpus))
    assert abs(n_fast / n_hf - 1) < 0.01, (n_fast, n_hf)


def test_auto_uses_rustbpe_and_ids_are_tiktoken_exact(corpus, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(corpus, encoding="utf-8")
    seen, merged = [], []
    tok = BPETokenizer.train(path, vocab_size=600, special_tokens=["<|endoftext|>", "<pad>"], progress=seen.append,
                             on_merges=lambda done, total: merged.append((done, total)))
    assert tok.trained_by == "rustbpe"
    assert sum(seen) == path.stat().st_size
    assert merged[-1] == (598 - 256, 598 - 256) and [d for d, _ in merged] == sorted(d for d, _ in merged)
    # specials: ids after the merges, allowed only when asked
    assert tok.special_tokens == {"<|endoftext|>": 598, "<pad>": 599} and tok.n_ranks == 598
    assert tok.encode("hi<|endoftext|>", allowed_special="all")[-1] == 598
    with pytest.raises(TokvecValueError, match="<|endoftext|>"):
        tok.encode("hi<|endoftext|>")
    # the encoder is tiktoken built from the ranks; round trip on hard strings
    enc = tiktoken.Encoding(name="t", pat_str=tok.pat_str, mergeable_ranks=tok.ranks, special_tokens=tok.special_tokens)
    for text in [corpus[:5000], "床前明月光 🙂👍🏽 e\u0301 \x00\r\n  x", "  leading", ""]:
        assert tok.encode(text) == enc.encode_ordinary(text)
        assert tok.decode(tok.encode(text)) == text
    assert BPETokenizer.train(path, vocab_size=600, special_tokens=["<|endoftext|>", "<pad>"]).ranks == tok.ranks


def test_min_frequency_falls_back_to_hf(corpus):
    # 100 distinct words seen 3 times: after the frequent pairs, rustbpe would merge pairs seen less often
    small = " ".join(f"w{i:03d}x" for i in range(100)) * 3
    auto = BPETokenizer.train_from_texts([small], vocab_size=2000, min_frequency=3, allow_smaller=True)
    hf = BPETokenizer.train_from_texts([small], vocab_size=2000, min_frequency=3, allow_smaller=True, engine="hf")
    assert auto.trained_by == "hf" and auto.ranks == hf.ranks
    with pytest.raises(TokvecValueError, match=r"min_frequency 3.*engine='hf'"):
        BPETokenizer.train_from_texts([small], vocab_size=2000, min_frequency=3, allow_smaller=True, engine="rustbpe")
    # min_frequency 1: running out of pairs is no reason to fall back
    ones = BPETokenizer.train_from_texts([small], vocab_size=2000, min_frequency=1, allow_smaller=True)
    assert ones.trained_by == "rustbpe" and ones.n_ranks > hf.n_ranks
    # a frequent-enough corpus keeps rustbpe with the default min_frequency 2
    assert BPETokenizer.train_from_texts([corpus], vocab_size=512).trained_by == "rustbpe"


def test_one_shot_iterator_goes_to_hf_when_min_frequency_matters(corpus):
    gen = (line for line in corpus.splitlines())
    tok = BPETokenizer.train_from_texts(gen, vocab_size=512)
    assert tok.trained_by == "hf"
    gen = (line for line in corpus.splitlines())
    assert BPETokenizer.train_from_texts(gen, vocab_size=512, min_frequency=1).trained_by == "rustbpe"


def test_engine_errors():
    with pytest.raises(TokvecValueError, match=r"'fast'.*auto, rustbpe, hf"):
        BPETokenizer.train_from_texts(["abc"], vocab_size=300, engine="fast")
    with pytest.raises(TokvecValueError, match="empty"):
        BPETokenizer.train_from_texts([""], vocab_size=300)
    with pytest.raises(TokvecTypeError, match="must be str, got int"):
        BPETokenizer.train_from_texts(["ok", 3], vocab_size=300, engine="rustbpe")
