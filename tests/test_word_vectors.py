"""Pretrained word vectors: the four file formats, neighbours and analogies, errors naming file and line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tokvec import WordTokenizer
from tokvec.embedding import TokenEmbedding
from tokvec.errors import FormatError, TokvecTypeError, TokvecValueError, UnknownTokenError
from tokvec.tokenizers import word_vectors as wv_module
from tokvec.tokenizers.word_vectors import detect_format, read_word_vectors

# Hand-computable vectors: |king| = |queen| = 5, the others are unit vectors.
VECS = {
    "king": [3.0, 4.0, 0.0],
    "queen": [3.0, 0.0, 4.0],
    "man": [0.0, 1.0, 0.0],
    "woman": [0.0, 0.0, 1.0],
    "apple": [1.0, 0.0, 0.0],
    "naïve": [-0.5, -0.25, -0.125],
}
WORDS = list(VECS)
TABLE = torch.tensor(list(VECS.values()))


def text_lines(vecs=VECS, end="\n"):
    return "".join(f"{w} " + " ".join(repr(x) for x in v) + end for w, v in vecs.items())


def write_glove(path, vecs=VECS):
    path.write_text(text_lines(vecs), encoding="utf-8")
    return path


def write_word2vec(path, vecs=VECS, end="\n"):
    path.write_text(f"{len(vecs)} 3\n" + text_lines(vecs, end), encoding="utf-8", newline="")
    return path


def write_binary(path, vecs=VECS, newline=True, n=None):
    with open(path, "wb") as f:
        f.write(f"{len(vecs) if n is None else n} 3\n".encode())
        for w, v in vecs.items():
            f.write(w.encode() + b" " + np.array(v, dtype="<f4").tobytes() + (b"\n" if newline else b""))
    return path


@pytest.fixture(params=["glove", "word2vec", "fasttext-vec", "crlf", "binary", "binary-no-newline"])
def vector_file(request, tmp_path):
    kind = request.param
    if kind == "glove":
        return write_glove(tmp_path / "glove.txt"), "glove"
    if kind == "word2vec":
        return write_word2vec(tmp_path / "w2v.txt"), "word2vec"
    if kind == "fasttext-vec":  # fastText ends every line with a space
        return write_word2vec(tmp_path / "ft.vec", end=" \n"), "word2vec"
    if kind == "crlf":
        return write_word2vec(tmp_path / "crlf.txt", end="\r\n"), "word2vec"
    return write_binary(tmp_path / "w2v.bin", newline=kind == "binary"), "word2vec-binary"


def test_every_format_loads_the_same_table(vector_file):
    path, fmt = vector_file
    assert detect_format(path) == fmt
    wv = read_word_vectors(path)
    assert wv.format == fmt and wv.words == WORDS and len(wv) == 6 and wv.dim == 3
    assert wv.vectors.dtype == torch.float32 and wv.vectors.shape == (6, 3)
    assert torch.equal(wv.vectors, TABLE)
    assert wv.words == read_word_vectors(path, format=fmt, words_only=True).words
    assert read_word_vectors(path, limit=2).words == ["king", "queen"]
    assert torch.equal(read_word_vectors(path, limit=2).vectors, TABLE[:2])


def test_neighbors_and_analogy_pinned_to_hand_computed_cosines(tmp_path, error_says):
    wv = read_word_vectors(write_glove(tmp_path / "v.txt"))
    # cos(king, man) = 4/5, cos(king, apple) = 3/5, cos(king, queen) = 9/25, cos(king, woman) = 0
    got = wv.neighbors("king", k=4)
    assert [w for w, _ in got] == ["man", "apple", "queen", "woman"]
    assert [s for _, s in got] == pytest.approx([0.8, 0.6, 0.36, 0.0], abs=1e-6)
    # king - man + woman on unit vectors: q = (0.6, -0.2, 1), |q| = sqrt(1.4);
    # cos(q, queen) = (0.36 + 0.8) / sqrt(1.4), cos(q, apple) = 0.6 / sqrt(1.4); the three inputs left out
    got = wv.analogy("king", "man", "woman", k=2)
    assert [w for w, _ in got] == ["queen", "apple"]
    assert [s for _, s in got] == pytest.approx([1.16 / math.sqrt(1.4), 0.6 / math.sqrt(1.4)], abs=1e-6)
    with error_says(UnknownTokenError, "'King'", "6 words", "'king'"):
        wv.neighbors("King")
    with error_says(TokvecValueError, "k must", ">= 1", "got 0"):
        wv.neighbors("king", k=0)


def test_blocks_keep_line_numbers(tmp_path, monkeypatch, error_says):
    monkeypatch.setattr(wv_module, "BLOCK_BYTES", 64)  # many blocks, lines cut across them
    vecs = {f"w{i}": [i, i / 2, -i] for i in range(200)}
    path = write_word2vec(tmp_path / "many.txt", vecs)
    wv = read_word_vectors(path)
    assert wv.words == list(vecs) and torch.equal(wv.vectors, torch.tensor(list(vecs.values()), dtype=torch.float32))
    lines = path.read_text().splitlines(keepends=True)
    lines[150] = "w149x 1 2 oops\n"  # line 151 of the file
    path.write_text("".join(lines))
    with error_says(FormatError, "many.txt", "line 151", "column 4", "number", "'oops'"):
        read_word_vectors(path)
    binary = write_binary(tmp_path / "many.bin", {f"w{i}": [i, 0, 0] for i in range(100)})
    assert read_word_vectors(binary).words[-1] == "w99"


@pytest.mark.parametrize(
    "content, facts",
    [
        ("king 1 2 3\nqueen 1 2\n", ("line 2", "3 numbers", "4 columns", "found 3")),
        ("king 1 2 3\nnew york 1 2 3\n", ("line 2", "found 5 column", "a space in it")),
        ("king 1 2 3\nqueen 1 two 3\n", ("line 2", "column 3", "number", "'two'")),
        ("king 1 2 3\nqueen 1 nan 3\n", ("line 2", "column 3", "finite number")),
        ("king 1 2 3\nqueen 1 2 3\nking 4 5 6\n", ("line 3", "'king'", "twice", "first at line 1")),
        ("king 1 2 3\n\nqueen 1 2 3\n", ("line 2", "empty line")),
        ("", ("is empty",)),
        ("king\n", ("line 1", "a word then its numbers")),
        ("3 3\nking 1 2 3\nqueen 1 2 3\n", ("3 words", "holds 2", "limit=2")),
        ("1 3\nking 1 2 3\nqueen 1 2 3\n", ("line 3", "more lines", "1 words")),
        ("2 3\nking 1 2 3\nqueen 1 2 3\nking 1 2 3\n", ("line 4", "more lines")),
        ("2 3\nking 1 2 3\nking 1 2 3\n", ("line 3", "'king'", "twice", "first at line 2")),
        ("2 0\n", ("line 1", "dim 0")),
    ],
)
def test_bad_text_files_name_file_line_and_expectation(tmp_path, content, facts, error_says):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with error_says(FormatError, "bad.txt", *facts):
        read_word_vectors(path)


def test_trailing_blank_lines_and_bad_utf8(tmp_path, error_says):
    path = tmp_path / "v.txt"
    path.write_text(text_lines() + "\n\n", encoding="utf-8")
    assert read_word_vectors(path).words == WORDS
    path.write_bytes(b"king 1 2 3\nqu\xffeen 1 2 3\n")
    with error_says(FormatError, "v.txt", "line 2", "UTF-8"):
        read_word_vectors(path)


def test_bad_binary_files(tmp_path, error_says):
    full = write_binary(tmp_path / "ok.bin").read_bytes()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(full[:-5])
    with error_says(FormatError, "cut.bin", "record 6", "byte 96", "12 bytes", "3 float32", "only 8", "truncated"):
        read_word_vectors(cut)
    short = tmp_path / "short.bin"  # the header claims one more record than the bytes hold
    short.write_bytes(full.replace(b"6 3\n", b"7 3\n", 1) + b"x")
    with error_says(FormatError, "short.bin", "record 7", "a word and a space", "the file ends"):
        read_word_vectors(short)
    short.write_bytes(full.replace(b"6 3\n", b"100 3\n", 1))
    with error_says(FormatError, "short.bin", "100 words", "dim 3", "only 112 bytes", "truncated"):
        read_word_vectors(short)
    dupes = write_binary(tmp_path / "dupes.bin", {"a": [1, 2, 3], "b": [1, 2, 3]})
    dupes.write_bytes(dupes.read_bytes().replace(b"b ", b"a ", 1))
    with error_says(FormatError, "record 2", "'a'", "twice", "first at record 1"):
        read_word_vectors(dupes)
    nan = write_binary(tmp_path / "nan.bin", {"a": [1, 2, 3], "b": [1, float("nan"), 3]})
    with error_says(FormatError, "record 2", "'b'", "finite float32"):
        read_word_vectors(nan)
    with pytest.raises(TokvecValueError, match="unknown word-vector format 'gensim'"):
        read_word_vectors(nan, format="gensim")
    with pytest.raises(TokvecValueError, match="no word-vector file at"):
        read_word_vectors(tmp_path / "absent.txt")


def test_word_tokenizer_from_word_vectors(tmp_path):
    tok = WordTokenizer.from_word_vectors(write_glove(tmp_path / "v.txt"))
    assert list(tok.vocab) == ["<pad>", "<unk>", "<bos>", "<eos>"] + WORDS
    assert tok.encode("king and queen") == [4, 1, 5]  # whitespace dropped, 'and' unknown
    assert tok.keep_whitespace is False


def test_token_embedding_from_word_vectors(tmp_path, error_says):
    path = write_word2vec(tmp_path / "v.txt")
    tok = WordTokenizer.from_word_vectors(path, limit=4)  # king queen man woman
    emb, cov = TokenEmbedding.from_word_vectors(path, vocab=tok)
    assert emb.weight.shape == (8, 3) and emb.padding_idx == 0 and emb.frozen
    assert torch.equal(emb.weight[4:], TABLE[:4]) and torch.equal(emb.weight[0], torch.zeros(3))
    assert (cov.found, cov.total, cov.ratio) == (4, 4, 1.0) and "coverage 4 / 4 tokens (100.0%)" in str(cov)

    vocab = ["King", "apple", "pear", "plum"]
    zero, cov = TokenEmbedding.from_word_vectors(path, vocab=vocab, oov="zero", freeze=False)
    assert not zero.frozen and zero.padding_idx is None
    assert torch.equal(zero.weight, torch.stack([torch.zeros(3), TABLE[4], torch.zeros(3), torch.zeros(3)]))
    assert (cov.found, cov.total, cov.missing) == (1, 4, ["King", "pear", "plum"])
    assert "coverage 1 / 4 tokens (25.0%)" in str(cov) and "3 missing, e.g. 'King', 'pear'" in str(cov)
    low, cov = TokenEmbedding.from_word_vectors(path, vocab=vocab, oov="zero", lowercase_fallback=True)
    assert cov.found == 2 and torch.equal(low.weight[0], TABLE[0])

    rand, _ = TokenEmbedding.from_word_vectors(path, vocab=vocab, seed=3)
    again, _ = TokenEmbedding.from_word_vectors(path, vocab=vocab, seed=3)
    assert torch.equal(rand.weight, again.weight) and torch.equal(rand.weight[1], TABLE[4])
    assert rand.weight[2].abs().sum() > 0  # a random row, drawn N(0, std of the file's numbers)

    with error_says(UnknownTokenError, "3 of 4 tokens", "v.txt", "'King', 'pear'"):
        TokenEmbedding.from_word_vectors(path, vocab=vocab, oov="error")
    with error_says(TokvecValueError, "'skip'", "random, zero, error"):
        TokenEmbedding.from_word_vectors(path, vocab=vocab, oov="skip")
    with error_says(TokvecTypeError, "vocab", "word or char tokenizer"):
        TokenEmbedding.from_word_vectors(path, vocab=42)
    loaded = read_word_vectors(path)  # a loaded file works too (no second read)
    emb64, _ = TokenEmbedding.from_word_vectors(loaded, vocab=tok, dtype=torch.float64)
    assert emb64.weight.dtype == torch.float64


def test_train_init_embeddings(tmp_path, error_says):
    from tokvec.model.gpt import GPT
    from tokvec.runs.train import TrainConfig, init_token_embeddings, train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the king and the queen speak . the man and the woman listen .\n" * 40, encoding="utf-8")
    vecs = {w: [float(i), 1.0, -1.0, 0.5] for i, w in enumerate(["the", "king", "queen", "man", "absent"])}
    path = write_glove(tmp_path / "v4.txt", vecs)
    config = TrainConfig(
        corpus=str(corpus),
        tokenizer="word",
        d_model=4,
        n_layers=1,
        n_heads=2,
        context_length=8,
        batch_size=2,
        max_steps=2,
        eval_interval=2,
        eval_batches=1,
        threads=1,
        out=str(tmp_path / "run"),
        init_embeddings=str(path),
    )
    result = train(config)
    cov = result.embedding_coverage
    assert (cov.found, cov.total) == (4, result.tokenizer.vocab_size - 4)  # the, king, queen, man of 12 words
    # the copy itself, on a fresh model: rows of found words are the file's vectors
    model = GPT(config.model_config(result.tokenizer.vocab_size))
    init_token_embeddings(model, result.tokenizer, str(path))
    vocab = result.tokenizer.vocab
    assert model.embed.token.weight[vocab.token_to_id("queen")].tolist() == [2.0, 1.0, -1.0, 0.5]
    assert model.embed.token.weight.requires_grad
    with error_says(TokvecValueError, "v4.txt", "4-dimensional", "d_model is 8", "--d-model 4"):
        train(TrainConfig(**{**config.to_dict(), "d_model": 8, "out": str(tmp_path / "run8")}))
    with error_says(TokvecValueError, "word (or char) tokenizer", "BPETokenizer"):
        train(TrainConfig(**{**config.to_dict(), "tokenizer": "bpe:280", "out": str(tmp_path / "bpe")}))


def test_progress_reports_every_byte(vector_file):
    path, _ = vector_file
    seen = []
    read_word_vectors(path, progress=seen.append)
    assert sum(seen) == path.stat().st_size
