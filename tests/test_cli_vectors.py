"""CLI: neighbors / analogy on word-vector files, train --init-embeddings, tokenizer train --engine."""

from __future__ import annotations

import pytest


def rows(out: str) -> list[list[str]]:
    """The ranked rows of a printed table."""
    return [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]


@pytest.fixture
def glove(tmp_path):
    path = tmp_path / "v.txt"  # |king| = |queen| = 5, man/woman/apple unit vectors
    path.write_text("king 3 4 0\nqueen 3 0 4\nman 0 1 0\nwoman 0 0 1\napple 1 0 0\n", encoding="utf-8")
    return path


def test_neighbors_and_analogy(cli, glove):
    code, out, err = cli("neighbors", "--vectors", glove, "king", "-k", "2")
    assert code == 0, err
    assert "5 words x 3 dimensions (glove)" in err
    assert rows(out) == [["1", "man", "+0.8000"], ["2", "apple", "+0.6000"]]  # cos = 4/5, 3/5
    code, out, err = cli("analogy", "--vectors", glove, "king", "man", "woman", "-k", "1")
    assert code == 0, err
    assert rows(out) == [["1", "queen", "+0.9804"]]  # (0.36 + 0.8) / sqrt(1.4)


def test_vector_errors_are_one_line(cli, glove, tmp_path):
    code, out, err = cli("analogy", "--vectors", glove, "King", "man", "woman")
    assert (
        code == 2
        and err.splitlines()[-1].startswith("tokvec: error: 'King' is not among the 5 words")
        and "'king'" in err
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("king 1 2 3\nqueen 1 x 3\n", encoding="utf-8")
    code, out, err = cli("neighbors", "--vectors", bad, "king")
    assert code == 2 and "bad.txt, line 2, column 3: expected a number, got 'x'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("neighbors", "--vectors", tmp_path / "none.txt", "king")
    assert code == 2 and "no word-vector file at" in err
    code, out, err = cli("neighbors", "--vectors", glove, "--run", tmp_path, "king")
    assert code == 2 and "--run or --vectors, not both" in err


def test_train_init_embeddings_prints_coverage_and_checks_d_model(cli, glove, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the king and the queen . a man and a woman .\n" * 30, encoding="utf-8")
    common = [
        "train",
        "--corpus",
        corpus,
        "--tokenizer",
        "word",
        "--layers",
        "1",
        "--heads",
        "1",
        "--context",
        "8",
        "--max-steps",
        "2",
        "--eval-interval",
        "2",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--init-embeddings",
        glove,
    ]
    code, out, err = cli(*common, "--d-model", "3", "--out", tmp_path / "run")
    assert code == 0, err
    # tokens: the king and queen . a man woman, " " and "\n" (whitespace kept) -> 4 of 10 in the file
    assert "token table initialised from word vectors: coverage 4 / 10 tokens (40.0%)" in out
    code, out, err = cli(*common, "--d-model", "8", "--out", tmp_path / "run8")
    assert code == 2 and "holds 3-dimensional vectors but the model's d_model is 8; pass --d-model 3" in err


def test_tokenizer_train_engine(cli, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("low lower lowest newer newest wider widest\n" * 200, encoding="utf-8")
    for engine in ("rustbpe", "hf"):
        code, out, err = cli(
            "tokenizer",
            "train",
            "--corpus",
            corpus,
            "--vocab-size",
            "270",
            "--engine",
            engine,
            "--out",
            tmp_path / f"{engine}.json",
        )
        assert code == 0, err
        flat = " ".join(out.split())  # rich wraps long lines
        assert f") by {engine} on 1 file(s)" in flat and "vocab_size=270" in flat
    code, out, err = cli(
        "tokenizer",
        "train",
        "--corpus",
        corpus,
        "--vocab-size",
        "270",
        "--engine",
        "fast",
        "--out",
        tmp_path / "x.json",
    )
    assert code == 2 and "unknown BPE training engine 'fast'" in err
