"""Train/val split by position, random training windows, contiguous eval windows."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokvec.corpus import corpus_files, corpus_ids, default_corpus_files, read_corpus
from tokvec.data.batches import batch_generator, eval_batches, min_corpus_tokens, random_batch, split_by_position
from tokvec.errors import TokvecValueError
from tokvec.tokenizers import CharTokenizer


def test_tail_split_is_nanogpt_split():
    # nanoGPT prepare.py: train = first 90%, val = last 10%
    s = split_by_position(np.arange(100), context=4, val_fraction=0.1, mode="tail")
    assert len(s.train) == 1 and s.train[0].tolist() == list(range(90))
    assert s.val.tolist() == list(range(90, 100)) and s.val_start == 90


def test_seeded_split_is_fixed_by_seed_and_moves_with_it():
    ids = np.arange(10_000)
    a = split_by_position(ids, context=8, val_fraction=0.1, seed=3)
    b = split_by_position(ids, context=8, val_fraction=0.1, seed=3)
    starts = {split_by_position(ids, context=8, val_fraction=0.1, seed=s).val_start for s in range(8)}
    assert a.val_start == b.val_start
    assert len(starts) > 1  # the seed places the block
    assert len(a.val) == 1000


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(20, 3000),
    context=st.integers(1, 9),
    frac=st.floats(0.05, 0.5),
    seed=st.integers(0, 99),
    mode=st.sampled_from(["seeded", "tail"]),
)
def test_split_partitions_the_corpus_by_position(n, context, frac, seed, mode):
    ids = np.arange(n)
    if n < min_corpus_tokens(context, frac):
        with pytest.raises(TokvecValueError, match=f"corpus is {n} tokens long"):
            split_by_position(ids, context=context, val_fraction=frac, seed=seed, mode=mode)
        return
    s = split_by_position(ids, context=context, val_fraction=frac, seed=seed, mode=mode)
    val = set(s.val.tolist())
    assert s.val.tolist() == list(range(s.val_start, s.val_start + len(s.val)))  # contiguous
    assert len(s.val) >= context + 1 and s.train
    for seg in s.train:
        assert len(seg) >= context + 1 and not val & set(seg.tolist())
        assert np.all(np.diff(seg) == 1)  # each training segment is contiguous too


def test_short_corpus_error_names_length_and_need(error_says):
    with error_says(TokvecValueError, "10 tokens", "context 8", "at least 18 tokens"):
        split_by_position(np.arange(10), context=8)


def test_random_batch_windows_are_shifted_pairs_inside_train():
    ids = np.arange(1000)
    s = split_by_position(ids, context=16, val_fraction=0.2, seed=1)
    x, y = random_batch(s.train, batch_size=64, context=16, generator=batch_generator(1, 0))
    assert x.shape == y.shape == (64, 16) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.all(y[:, -1] == x[:, -1] + 1)  # ids = arange: a window is a run of consecutive ids
    lo, hi = s.val_start, s.val_start + len(s.val)
    assert not ((y >= lo) & (y < hi)).any()  # no target from the val block


def test_random_batch_is_a_function_of_seed_and_step():
    ids = np.arange(5000)
    s = split_by_position(ids, context=8, seed=0)

    def draw(seed, step):
        return random_batch(s.train, batch_size=8, context=8, generator=batch_generator(seed, step))[0]

    assert torch.equal(draw(1, 5), draw(1, 5))
    assert not torch.equal(draw(1, 5), draw(1, 6))
    assert not torch.equal(draw(1, 5), draw(2, 5))


def test_eval_batches_are_contiguous_non_overlapping():
    seg = np.arange(50)
    batches = list(eval_batches([seg], batch_size=2, context=8))
    xs = torch.cat([x for x, _ in batches])
    # windows start at 0, 8, ..., 40 (each needs 9 ids: 40 + 9 = 49 <= 50)
    assert xs[:, 0].tolist() == [0, 8, 16, 24, 32, 40]
    assert [len(x) for x, _ in batches] == [2, 2, 2]


def test_eval_batches_subset_is_spread_and_stable():
    seg = np.arange(10_001)
    a = [x[:, 0].tolist() for x, _ in eval_batches([seg], batch_size=4, context=10, max_batches=2)]
    b = [x[:, 0].tolist() for x, _ in eval_batches([seg], batch_size=4, context=10, max_batches=2)]
    assert a == b
    flat = sum(a, [])
    assert len(flat) == 8 and flat[0] == 0 and flat[-1] == 9990


def test_corpus_directory_reads_sorted_files(tmp_path):
    (tmp_path / "b.txt").write_text("second", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / ".hidden").write_text("no", encoding="utf-8")
    assert [p.name for p in corpus_files(tmp_path)] == ["a.txt", "b.txt"]
    assert read_corpus(tmp_path) == "first\nsecond"


def test_corpus_errors(tmp_path, error_says):
    with pytest.raises(FileNotFoundError, match="no corpus file or directory"):
        corpus_files(tmp_path / "missing.txt")
    with pytest.raises(TokvecValueError, match="holds no files"):
        corpus_files(tmp_path)
    (tmp_path / "gbk.txt").write_bytes("你好".encode("gb18030"))
    with error_says(TokvecValueError, "gbk.txt", "utf-8", "byte offset 0", "--encoding"):
        read_corpus(tmp_path / "gbk.txt")


def test_default_corpus_is_stdlib_sorted():
    files = default_corpus_files()
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert any(f.name == "os.py" for f in files)


def test_corpus_ids_dtype():
    tok = CharTokenizer.train(["abc"])
    ids = corpus_ids(tok, "abcab")
    assert ids.dtype == np.uint16 and ids.tolist() == tok.encode("abcab")
