"""BPE training engines: native (tokvec's C trainer, the default), rustbpe and HF's BpeTrainer; min_frequency,
specials, progress. The C trainer's own tests (against a naive trainer, worked examples) are in test_native_train.py."""

from __future__ import annotations

import random
import sys

import pytest
import tiktoken

from tokvec import BPETokenizer
from tokvec.errors import TokvecTypeError, TokvecValueError

pytest.importorskip("rustbpe")


@pytest.fixture
def no_native(monkeypatch):
    """An install where the C trainer was not built (no compiler): importing it fails."""
    _without_native(monkeypatch)


def _without_native(monkeypatch):
    import tokvec.tokenizers

    monkeypatch.setitem(sys.modules, "tokvec.tokenizers._bpe_native", None)
    monkeypatch.delattr(tokvec.tokenizers, "_bpe_native", raising=False)


# Pair counts all distinct for the first merges (no ties), so both trainers must agree.
PINNED_CORPUS = "".join(
    f" {w}" * c
    for w, c in {
        "the": 60,
        "then": 41,
        "there": 29,
        "other": 17,
        "mother": 11,
        "moth": 7,
        "three": 5,
        "thee": 3,
    }.items()
)
# The first 12 merges HF tokenizers 0.22's BpeTrainer makes on PINNED_CORPUS (cl100k pattern,
# min_frequency 1), computed once with engine="hf" and written here.
PINNED_MERGES = [
    b"th",
    b"the",
    b" the",
    b" then",
    b"re",
    b" there",
    b"othe",
    b"other",
    b" m",
    b" other",
    b" mother",
    b"oth",
]


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
    for engine in ("native", "rustbpe", "hf"):
        tok = BPETokenizer.train_from_texts([PINNED_CORPUS], vocab_size=256 + 12, engine=engine, min_frequency=1)
        assert tok.trained_by == engine
        assert merges(tok) == PINNED_MERGES, engine


@pytest.mark.parametrize("engine", ["native", "rustbpe"])
def test_fast_engines_deterministic_and_compression_within_1pct_of_hf(corpus, engine):
    fast = BPETokenizer.train_from_texts([corpus], vocab_size=1024, engine=engine)
    again = BPETokenizer.train_from_texts([corpus], vocab_size=1024, engine=engine)
    hf = BPETokenizer.train_from_texts([corpus], vocab_size=1024, engine="hf")
    assert fast.trained_by == engine and hf.trained_by == "hf"
    assert fast.ranks == again.ranks and fast.fingerprint() == again.fingerprint()
    assert fast.vocab_size == hf.vocab_size == 1024
    n_fast, n_hf = len(fast.encode(corpus)), len(hf.encode(corpus))
    assert abs(n_fast / n_hf - 1) < 0.01, (n_fast, n_hf)


@pytest.mark.parametrize("pattern", ["cl100k", "gpt2", "o200k", r"\s?\p{L}+|\s?\p{N}+|\s+|[^\s\p{L}\p{N}]+"])
def test_native_makes_rustbpes_merges(corpus, pattern):
    # the same rule (most frequent pair, ties to the lower pair of ids) on the same pieces: the same
    # ranks, whatever the pattern (named ones split in C, a custom one with the regex module)
    for vocab_size in (300, 3000):
        native = BPETokenizer.train_from_texts([corpus], vocab_size=vocab_size, pattern=pattern, engine="native")
        rust = BPETokenizer.train_from_texts([corpus], vocab_size=vocab_size, pattern=pattern, engine="rustbpe")
        assert native.trained_by == "native" and rust.trained_by == "rustbpe"
        assert native.ranks == rust.ranks


def test_auto_uses_native_and_ids_are_tiktoken_exact(corpus, tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(corpus, encoding="utf-8")
    seen, merged = [], []
    tok = BPETokenizer.train(
        path,
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<pad>"],
        progress=seen.append,
        on_merges=lambda done, total: merged.append((done, total)),
    )
    assert tok.trained_by == "native"
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


# 100 distinct words seen 3 times: after the frequent pairs, rustbpe goes on to pairs seen less often
RARE_TAIL = " ".join(f"w{i:03d}x" for i in range(100)) * 3


@pytest.mark.parametrize("engine", ["native", "rustbpe"])
@pytest.mark.parametrize("min_frequency, n_ranks", [(2, 368), (3, 367), (4, 267)])
def test_min_frequency_cut_equals_hf_trainer(min_frequency, n_ranks, engine):
    # n_ranks: what HF tokenizers 0.23's BpeTrainer keeps (engine="hf", computed once). native stops
    # there itself; rustbpe's 1744 merges are reported every 17, so the cut inside a window comes
    # from re-encoding the corpus
    fast = BPETokenizer.train_from_texts(
        [RARE_TAIL], vocab_size=2000, min_frequency=min_frequency, allow_smaller=True, engine=engine
    )
    hf = BPETokenizer.train_from_texts(
        [RARE_TAIL], vocab_size=2000, min_frequency=min_frequency, allow_smaller=True, engine="hf"
    )
    assert fast.trained_by == engine and hf.trained_by == "hf"
    assert fast.n_ranks == hf.n_ranks == n_ranks
    assert fast.ranks == hf.ranks
    # min_frequency 1: every merge until the pairs run out (each piece one token)
    ones = BPETokenizer.train_from_texts(
        [RARE_TAIL], vocab_size=2000, min_frequency=1, allow_smaller=True, engine=engine
    )
    assert ones.trained_by == engine and ones.n_ranks == 368 >= n_ranks


def test_min_frequency_cut_on_a_long_tail_matches_hf(corpus, tmp_path, error_says):
    # the synthetic corpus has 3262 - 256 pairs seen twice (HF's count): vocab 30000 stops there, from files too
    path = tmp_path / "corpus.txt"
    path.write_text(corpus, encoding="utf-8")
    auto = BPETokenizer.train(path, vocab_size=30_000, allow_smaller=True)
    rust = BPETokenizer.train(path, vocab_size=30_000, allow_smaller=True, engine="rustbpe")
    hf = BPETokenizer.train(path, vocab_size=30_000, allow_smaller=True, engine="hf")
    assert auto.trained_by == "native" and auto.n_ranks == rust.n_ranks == hf.n_ranks == 3262
    assert auto.ranks == rust.ranks
    # ties between pairs of equal count are broken differently (ids differ), compression is the same
    assert abs(len(auto.encode(corpus)) / len(hf.encode(corpus)) - 1) < 0.001
    with error_says(TokvecValueError, "3262 tokens", "vocab_size 30000", "allow_smaller"):
        BPETokenizer.train(path, vocab_size=30_000)


def test_min_frequency_cut_falls_back_to_hf_when_overlaps_hide_a_count(error_says, no_native):
    # " qqq" once: the pair (q, q) occurs twice in it (HF merges it at min_frequency 2) but merges once.
    # Without the C trainer (it counts as HF does and needs no cut), auto falls back from rustbpe to HF
    text = RARE_TAIL + " qqq"
    auto = BPETokenizer.train_from_texts([text], vocab_size=2000, allow_smaller=True)
    hf = BPETokenizer.train_from_texts([text], vocab_size=2000, allow_smaller=True, engine="hf")
    assert auto.trained_by == "hf" and auto.ranks == hf.ranks and b"qq" in auto.ranks
    with error_says(TokvecValueError, "b'qq'", "a token twice", "engine='hf'"):
        BPETokenizer.train_from_texts([text], vocab_size=2000, allow_smaller=True, engine="rustbpe")
    # a one-shot iterator cannot be read again for the cut
    with error_says(TokvecValueError, "read once", "engine='hf'"):
        BPETokenizer.train_from_texts(iter([RARE_TAIL]), vocab_size=2000, allow_smaller=True, engine="rustbpe")


def test_native_counts_overlapping_pairs_as_hf_does():
    text = RARE_TAIL + " qqq"
    hf = BPETokenizer.train_from_texts([text], vocab_size=2000, allow_smaller=True, engine="hf")
    auto = BPETokenizer.train_from_texts([text], vocab_size=2000, allow_smaller=True)
    assert auto.trained_by == "native" and auto.ranks == hf.ranks and b"qq" in auto.ranks


def test_frequent_corpus_keeps_rustbpe_without_recount(corpus, no_native):
    from tokvec.tokenizers.bpe_train import auto_engine

    assert auto_engine() == "rustbpe"  # what `tokvec env` reports on such an install
    assert BPETokenizer.train_from_texts([corpus], vocab_size=512).trained_by == "rustbpe"


def test_native_engine_missing_says_how_to_build_it(no_native, error_says):
    with error_says(TokvecValueError, "not built", "C compiler", "engine='auto'"):
        BPETokenizer.train_from_texts(["abc abc"], vocab_size=257, engine="native")


def test_training_texts_are_bounded(monkeypatch):
    from tokvec import textstream

    # cuts after a letter before whitespace or punctuation lose nothing: the same merges as whole texts
    text = synthetic_corpus(4000, seed=1)
    whole = BPETokenizer.train_from_texts([text], vocab_size=700, engine="rustbpe")
    monkeypatch.setattr(textstream, "MAX_TRAIN_TEXT", 64)
    assert BPETokenizer.train_from_texts([text], vocab_size=700, engine="rustbpe").ranks == whole.ranks
    # a run of letters is cut every 64 characters: no token is longer, whatever the vocabulary
    run = "abcdefghijklmnopqrstuvw" * 400
    tok = BPETokenizer.train_from_texts([run], vocab_size=400, min_frequency=1, allow_smaller=True)
    assert max(map(len, tok.ranks)) == 64
    assert tok.decode(tok.encode(run)) == run


def test_one_shot_iterator_goes_to_hf_when_min_frequency_matters(corpus, monkeypatch):
    gen = (line for line in corpus.splitlines())
    assert BPETokenizer.train_from_texts(gen, vocab_size=512).trained_by == "native"  # one pass is all it needs
    _without_native(monkeypatch)
    gen = (line for line in corpus.splitlines())
    tok = BPETokenizer.train_from_texts(gen, vocab_size=512)
    assert tok.trained_by == "hf"
    gen = (line for line in corpus.splitlines())
    assert BPETokenizer.train_from_texts(gen, vocab_size=512, min_frequency=1).trained_by == "rustbpe"


def test_engine_errors():
    with pytest.raises(TokvecValueError, match=r"'fast'.*auto, native, rustbpe, hf"):
        BPETokenizer.train_from_texts(["abc"], vocab_size=300, engine="fast")
    with pytest.raises(TokvecValueError, match="empty"):
        BPETokenizer.train_from_texts([""], vocab_size=300)
    for engine in ("native", "rustbpe"):
        with pytest.raises(TokvecTypeError, match="must be str, got int"):
            BPETokenizer.train_from_texts(["ok", 3], vocab_size=300, engine=engine)
    with pytest.raises(TokvecValueError, match=r"'\\ud800'.*character 2.*surrogate"):
        BPETokenizer.train_from_texts(["ab\ud800 cd"], vocab_size=300, engine="native")
