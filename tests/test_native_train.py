"""tokvec's BPE trainer in C (``tokvec.tokenizers._bpe_native``, src/tokvec/tokenizers/_native/train.c).

Pinned against worked examples (counted by hand below) and a naive trainer written out in Python that
recounts every pair before each merge, so that it is plainly right. Through ``BPETokenizer.train`` it
is checked against rustbpe and HF in test_bpe_engines.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

native = pytest.importorskip(
    "tokvec.tokenizers._bpe_native", reason="the C trainer is not built (pip install -e . needs a C compiler)"
)


def naive_merges(pieces: dict[bytes, int], max_new: int, min_count: int = 1) -> list[tuple[int, int, int, int]]:
    """BPE by definition: before each merge count every adjacent pair (a piece seen c times adds c per
    occurrence, overlapping ones too); take the most frequent, ties to the lower (left, right); stop
    below min_count. Rewrite left to right. A merge whose bytes exist already reuses that token's id."""
    words = [list(p) for p in pieces]
    counts = list(pieces.values())
    by_id = [bytes([b]) for b in range(256)]
    ids = {t: i for i, t in enumerate(by_id)}
    out: list[tuple[int, int, int, int]] = []
    made = 0
    while made < max_new:
        pairs: dict[tuple[int, int], int] = {}
        for word, c in zip(words, counts):
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + c
        if not pairs:
            break
        pair = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[pair] < max(min_count, 1):
            break
        token_bytes = by_id[pair[0]] + by_id[pair[1]]
        if token_bytes not in ids:
            ids[token_bytes] = len(by_id)
            by_id.append(token_bytes)
            made += 1
        token = ids[token_bytes]
        out.append((token, *pair, pairs[pair]))
        for k, word in enumerate(words):
            i, new = 0, []
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
                    new.append(token)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            words[k] = new
    return out


def trained(pieces: dict[bytes, int], max_new: int, min_count: int = 1) -> list[tuple[int, int, int, int]]:
    trainer = native.Trainer()
    for piece, count in pieces.items():
        trainer.add_piece(piece, count)
    return trainer.merge(max_new, min_count)


A, B, C = b"abc"


def test_worked_example():
    # "abab" x2, "abc" x1. Pairs: ab 2*2 + 1 = 5, ba 2, bc 1 -> merge ab (256).
    # Words: [256 256] x2, [256 c]: (256, 256) 2, (256, c) 1 -> 257, then 258.
    assert trained({b"abab": 2, b"abc": 1}, 10) == [(256, A, B, 5), (257, 256, 256, 2), (258, 256, C, 1)]


def test_overlapping_pairs_count_each_and_merge_left_to_right():
    # "aaaa": (a, a) three times; merged left to right -> [256 256], then (256, 256) once
    assert trained({b"aaaa": 1}, 10) == [(256, A, A, 3), (257, 256, 256, 1)]
    # "aaa" x2: (a, a) 2 per word = 4; -> [256 a]: (256, a) 2
    assert trained({b"aaa": 2}, 10) == [(256, A, A, 4), (257, 256, A, 2)]


def test_ties_go_to_the_lower_pair_and_min_count_stops_exactly():
    # ab, cd, ba each seen 3 times: (97, 98) < (98, 97) < (99, 100)
    pieces = {b"cd": 3, b"ba": 3, b"ab": 3, b"xy": 2}
    assert [m[1:3] for m in trained(pieces, 10)] == [(A, B), (B, A), (C, ord("d")), (ord("x"), ord("y"))]
    assert [m[3] for m in trained(pieces, 10, min_count=3)] == [3, 3, 3]
    assert trained(pieces, 10, min_count=4) == []


def test_merges_come_in_steps_and_the_trainer_goes_on_where_it_stopped():
    pieces = {b"the cat sat on the mat": 5, b"then": 3, b"there": 2}
    whole = trained(pieces, 30)
    trainer = native.Trainer()
    for piece, count in pieces.items():
        trainer.add_piece(piece, count)
    steps = [trainer.merge(n, 1) for n in (1, 4, 0, 100)]
    assert [len(s) for s in steps[:3]] == [1, 4, 0]
    assert sum(steps, []) == whole and trainer.n_tokens() == 256 + len(whole)


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.dictionaries(
        st.binary(min_size=0, max_size=9).map(lambda b: bytes(97 + x % 3 for x in b)),  # a small alphabet: many ties
        st.integers(min_value=1, max_value=5),
        max_size=8,
    ),
    max_new=st.integers(min_value=0, max_value=40),
    min_count=st.integers(min_value=0, max_value=4),
)
def test_same_merges_as_the_naive_trainer(pieces, max_new, min_count):
    assert trained(pieces, max_new, min_count) == naive_merges(pieces, max_new, min_count)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(alphabet="ab cd\n中文é", max_size=40), max_size=12), max_new=st.integers(0, 60))
def test_counting_a_piece_twice_is_counting_it_once_with_twice_the_count(texts, max_new):
    # add_piece accumulates: the same piece added over several calls counts as their sum
    pieces: dict[bytes, int] = {}
    split = native.Trainer()
    for text in texts:
        for word in text.split(" "):
            piece = word.encode()
            pieces[piece] = pieces.get(piece, 0) + 1
            split.add_piece(piece, 1)
    assert split.merge(max_new, 1) == trained(pieces, max_new)


def test_bad_calls_are_refused():
    trainer = native.Trainer()
    with pytest.raises(ValueError, match="count must be >= 1, got 0"):
        trainer.add_piece(b"ab", 0)
    with pytest.raises(ValueError, match="pattern must be 0 .* got 7"):
        trainer.add_text("ab", 7)
    with pytest.raises(ValueError, match="max_new must be >= 0"):
        trainer.merge(-1, 1)
    trainer.add_piece(b"ab", 2)
    assert trainer.distinct_pieces() == 1
    assert trainer.merge(5, 1) == [(256, A, B, 2)]
    with pytest.raises(RuntimeError, match="count all the text first"):
        trainer.add_piece(b"cd", 1)
    with pytest.raises(UnicodeEncodeError):
        native.Trainer().add_text("a\ud800", native.CL100K)


def test_merging_releases_the_gil():
    # another Python thread runs while the C trainer merges (it holds no Python state meanwhile)
    trainer = native.Trainer()
    for i in range(20_000):
        trainer.add_piece(f"w{i:05d}{i * 7919 % 10007:05d}{i * 31 % 97:02d}".encode(), 1 + i % 7)
    ticks, done = [], threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    other = threading.Thread(target=tick)
    other.start()
    try:
        start = time.perf_counter()
        made = trainer.merge(100_000, 1)
        end = time.perf_counter()
    finally:
        done.set()
        other.join()
    assert len(made) > 10_000 and end - start > 0.1  # (else this test would show nothing)
    # holding the GIL, the other thread could run only at the edges of the call
    assert sum(start + 0.02 < t < end - 0.02 for t in ticks) > 10


def test_the_trainer_is_built_where_a_compiler_is():
    # setup.py marks the extension optional (an install without a compiler still works, on rustbpe);
    # on a machine with one, as in CI, a build failure must not pass unnoticed
    import shutil

    import tokvec.tokenizers.bpe_train as bpe_train

    if not (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")):
        pytest.skip("no C compiler here: the trainer is optional")
    assert bpe_train._have_native()


def test_counts_whose_pairs_would_overflow_int64_are_refused():
    # "aaa" seen 2**62 times holds the pair (a, a) 2 * 2**62 = 2**63 times, one past int64: the count
    # used to wrap negative and merge() returned [] as if no pair were there
    trainer = native.Trainer()
    with pytest.raises(ValueError, match=r"count 4611686018427387904 is too large.*2\*\*63 - 1"):
        trainer.add_piece(b"aaa", 2**62)
    trainer.add_piece(b"aaa", 2**62 - 1)  # 2**63 - 2 pairs: fits, and the refused count was not kept
    with pytest.raises(ValueError, match="count 1 is too large"):
        trainer.add_piece(b"bcd", 1)  # 1 more pair would still fit; 2 no longer do
    assert trainer.merge(5, 1) == [(256, A, A, 2**63 - 2), (257, 256, A, 2**62 - 1)]
    # the bound is on all the pieces together: the same piece twice
    trainer = native.Trainer()
    trainer.add_piece(b"ab", 2**62)
    with pytest.raises(ValueError, match="too large"):
        trainer.add_piece(b"ab", 2**62)
    assert trainer.merge(5, 1) == [(256, A, B, 2**62)]


_OUT_OF_MEMORY_MID_MERGE = """
import random, resource
from tokvec.tokenizers import _bpe_native as native

rng = random.Random(0)
trainer = native.Trainer()
for _ in range(300_000):  # random bytes: every one of the 65536 pairs, each in ~70 words
    trainer.add_piece(rng.randbytes(16), 1)
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (vm + (16 << 20), hard))  # the words and pairs need ~40 MB more
try:
    trainer.merge(10, 1)
except MemoryError:
    print("MemoryError")
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
try:
    print(trainer.merge(10, 1))
except RuntimeError as e:
    print(e)
"""


@pytest.mark.slow
def test_a_trainer_that_ran_out_of_memory_refuses_to_go_on(tmp_path):
    # merge() that fails half-way leaves the words half built (or half rewritten); calling it again
    # used to give [] (or wrong merges) with no error: a tokenizer with no merges, silently
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS and /proc are Linux's")
    script = tmp_path / "oom.py"
    script.write_text(_OUT_OF_MEMORY_MID_MERGE)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "MemoryError"
    assert "ran out of memory in an earlier call" in second and "new Trainer" in second
