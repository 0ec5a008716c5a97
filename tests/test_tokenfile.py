"""Corpus -> token file: same ids as encoding whole files, dtype choice, sidecar checks, atomicity, CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tokvec import BPETokenizer, textstream
from tokvec.data import load_token_file, read_token_file_info, token_dtype, write_token_file
from tokvec.errors import FormatError, TokvecValueError

# Boundary traps for chunking: whitespace before newlines ("foo  \nbar" splits differently when cut),
# contractions ("we'll"), digit runs, CRLF, Chinese (3-byte characters cut by small read blocks).
TEXT = (
    "foo  \nbar we'll see 1234567 they'RE\r\n\r\n  lead  \t\n小沈阳江西演唱会邀请了，hello!!\n\nnaïve 🙂👍🏽 end.   \n"
) * 25


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return BPETokenizer.train_from_texts([TEXT], vocab_size=300, special_tokens=["<|endoftext|>"])


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "o200k"])
def test_chunked_ids_equal_whole_file_ids(tmp_path, monkeypatch, pattern):
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 17)  # hundreds of chunks, cut mid-character
    tok = BPETokenizer.train_from_texts([TEXT], vocab_size=300, pattern=pattern)
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    info = write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin", num_threads=2)
    ids = load_token_file(tmp_path / "ids.bin", tokenizer=tok, verify=True)
    assert info["dtype"] == "uint16" and ids.dtype == np.uint16
    assert ids.tolist() == tok.encode(TEXT)
    assert info["count"] == len(ids)


def _tokenizers_for_cuts():
    from tokvec.tokenizers import CharTokenizer, WordTokenizer

    return {
        "char": CharTokenizer.train([TEXT]),
        "char-nfkc": CharTokenizer.train([TEXT], normalization="NFKC"),
        "word": WordTokenizer.train([TEXT]),
        "word-segmenter": WordTokenizer.train([TEXT], segmenter=str.split),
        "bpe-custom": BPETokenizer.train_from_texts([TEXT], vocab_size=300, pattern=r"\w+|\s+|[\s\S]"),
        "bpe-special-with-space": BPETokenizer.train_from_texts(
            [TEXT], vocab_size=300, special_tokens=["<my special>"]
        ),
    }


@pytest.mark.parametrize(
    "text",
    [
        "abc" * 4000,  # no whitespace at all (issue 11: 5870 vs 5861 ids)
        ("e\u0301 " * 300 + "x\u0301\n") * 20,  # combining marks right after the cut points
        (TEXT + "<my special> ") * 3,  # a special token whose text holds a space
    ],
    ids=["no-boundary", "combining", "special"],
)
@pytest.mark.parametrize(
    "kind", ["char", "char-nfkc", "word", "word-segmenter", "bpe-custom", "bpe-special-with-space"]
)
def test_every_tokenizer_chunks_to_whole_file_ids(kind, text, tmp_path, monkeypatch):
    """Item 16: chunks are cut only where the tokenizer guarantees no token spans the cut (or the file
    is encoded whole), so the token file holds exactly the ids of encoding the file whole."""
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 23)
    tok = _tokenizers_for_cuts()[kind]
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    special = frozenset(getattr(tok, "special_tokens", {}) or {})
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin", num_threads=2, allowed_special=special)
    whole = tok.encode(text, allowed_special=special) if special else tok.encode(text)
    assert load_token_file(tmp_path / "ids.bin", tokenizer=tok).tolist() == list(whole)


def test_no_safe_cut_means_one_chunk_not_a_forced_cut(monkeypatch):
    """Without a safe cut the text is carried to the end of the file (max_carry=None), never cut by size."""
    import tempfile
    from pathlib import Path

    monkeypatch.setattr(textstream, "BLOCK_BYTES", 100)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.txt"
        path.write_text("abc" * 1000, encoding="utf-8")
        chunks = list(textstream.iter_file_chunks(path, cut=lambda t: 0, max_carry=None))
        assert chunks == ["abc" * 1000]
        forced = list(textstream.iter_file_chunks(path, cut=lambda t: 0, max_carry=1000))
        assert "".join(forced) == "abc" * 1000 and len(forced) == 3  # the training path may cut by size


def test_safe_cut():
    assert textstream.safe_cut("one two thr") == 7
    assert textstream.safe_cut("   ") == 0
    assert textstream.safe_cut("小沈阳\n江西") == 3


def test_bounded_texts_cut_where_pieces_end():
    import regex

    from tokvec.tokenizers.patterns import CL100K

    text = "秦川雄帝宅，函谷壯皇居。綺殿千尋起，離宮百雉餘。 one two three" + "x" * 25
    parts = list(textstream.bounded_texts(text, 10))
    assert "".join(parts) == text and max(map(len, parts)) <= 10
    assert parts[:3] == ["秦川雄帝宅", "，函谷壯皇居", "。綺殿千尋起"]  # before the punctuation: no piece spans it
    assert parts[-4:] == [" threexxxx", "x" * 10, "x" * 10, "x"]  # a letter run with no cut: cut by size
    # every cut that is not forced falls between two cl100k pieces
    ends, at = {m.end() for m in regex.finditer(CL100K, text)}, 0
    for part in parts[:-4]:
        at += len(part)
        assert at in ends, (part, at)
    assert list(textstream.bounded_texts("short", 10)) == ["short"]
    assert textstream.letter_symbol_cut("it's 12") == 0  # an apostrophe or digit may join the letter's piece


def test_dtype_choice():
    assert token_dtype(65536) == "uint16"  # ids 0..65535 fit
    assert token_dtype(65537) == "uint32"  # id 65536 would wrap to 0 in uint16


def test_uint32_file_keeps_ids_above_65535(tmp_path):
    tok = BPETokenizer({bytes([b]): b for b in range(256)}, special_tokens={"<big>": 70000})
    (tmp_path / "a.txt").write_text("ab<big>c", encoding="utf-8")
    info = write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin", allowed_special={"<big>"})
    assert info["dtype"] == "uint32"
    assert load_token_file(tmp_path / "ids.bin").tolist() == [97, 98, 70000, 99]


def test_eot_between_files_and_sidecar(tok, tmp_path, error_says):
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "b.txt").write_text("world", encoding="utf-8")
    info = write_token_file(tok, str(tmp_path / "*.txt"), tmp_path / "ids.bin", eot="<|endoftext|>")
    eot = tok.special_tokens["<|endoftext|>"]
    assert load_token_file(tmp_path / "ids.bin").tolist() == tok.encode("hello") + [eot] + tok.encode("world") + [eot]
    side = json.loads((tmp_path / "ids.bin.json").read_text())
    assert side == info
    assert {k: side[k] for k in ("format", "version", "dtype", "tokenizer", "vocab_size", "corpus_files")} == {
        "format": "tokvec.tokens",
        "version": 1,
        "dtype": "uint16",
        "tokenizer": tok.fingerprint(),
        "vocab_size": 300,
        "corpus_files": 2,
    }
    with error_says(TokvecValueError, "eot '<eos>'", "special token"):
        write_token_file(tok, tmp_path / "a.txt", tmp_path / "x.bin", eot="<eos>")


def test_load_checks(tok, tmp_path, error_says):
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin")
    other = BPETokenizer.train_from_texts([TEXT], vocab_size=290)
    with error_says(FormatError, "ids.bin", re.compile(r"tokenizer [0-9a-f]{16}"), "bpe", "vocab_size 300"):
        load_token_file(tmp_path / "ids.bin", tokenizer=other)
    with open(tmp_path / "ids.bin", "ab") as f:
        f.write(b"\0")
    with error_says(FormatError, "ids.bin", re.compile(r"\d+ bytes"), re.compile(r"\d+ uint16 ids")):
        read_token_file_info(tmp_path / "ids.bin")
    (tmp_path / "ids.bin.json").unlink()
    with error_says(FormatError, "ids.bin.json", "did not finish"):
        load_token_file(tmp_path / "ids.bin")


def test_verify_detects_changed_content(tok, tmp_path):
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin")
    data = bytearray((tmp_path / "ids.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "ids.bin").write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"content hash differs from its sidecar"):
        load_token_file(tmp_path / "ids.bin", verify=True)


def test_interrupted_run_leaves_old_files_and_no_partial(tok, tmp_path, monkeypatch):
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 64)
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin")
    before = (tmp_path / "ids.bin").read_bytes(), (tmp_path / "ids.bin.json").read_text()
    (tmp_path / "b.txt").write_text(TEXT * 2, encoding="utf-8")
    calls = []

    def progress(n):
        calls.append(n)
        if len(calls) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_token_file(tok, tmp_path / "b.txt", tmp_path / "ids.bin", progress=progress)
    assert ((tmp_path / "ids.bin").read_bytes(), (tmp_path / "ids.bin.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "ids.bin", "ids.bin.json"]
    load_token_file(tmp_path / "ids.bin", tokenizer=tok)


def test_bad_corpus_inputs(tok, tmp_path, monkeypatch, error_says):
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 100)
    bad = tmp_path / "bad.txt"
    bad.write_bytes("é".encode() * 500 + b"\xff" + b"tail")  # the bad byte sits in the 11th block
    with error_says(TokvecValueError, "bad.txt", "utf-8", "byte offset 1000", "encoding=", "--encoding"):
        write_token_file(tok, bad, tmp_path / "ids.bin")
    assert not (tmp_path / "ids.bin").exists()
    gb = tmp_path / "gb.txt"
    gb.write_bytes("床前明月光，疑是地上霜。\n".encode("gb18030") * 20)
    write_token_file(tok, gb, tmp_path / "ids.bin", encoding="gb18030")
    assert tok.decode(load_token_file(tmp_path / "ids.bin")) == "床前明月光，疑是地上霜。\n" * 20
    special = tmp_path / "special.txt"
    special.write_text("a<|endoftext|>b", encoding="utf-8")
    with error_says(TokvecValueError, "special.txt", "'<|endoftext|>'"):
        write_token_file(tok, special, tmp_path / "ids2.bin")
    with pytest.raises(TokvecValueError, match=r"unknown text encoding 'klingon'"):
        write_token_file(tok, gb, tmp_path / "ids3.bin", encoding="klingon")


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_train_tokenize_encode(tmp_path, cli):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    code, out, err = cli(
        "tokenizer",
        "train",
        "--corpus",
        str(corpus),
        "--vocab-size",
        "300",
        "--special",
        "<|endoftext|>",
        "--out",
        str(tmp_path / "tok.json"),
    )
    assert code == 0, err
    assert "trained BPE vocab_size=300 (43 merges, 1 specials, pattern cl100k)" in out
    tok = BPETokenizer.from_dict(json.loads((tmp_path / "tok.json").read_text()))
    code, out, err = cli("tokenize", "-t", str(tmp_path / "tok.json"), "小沈阳 hello")
    assert code == 0, err
    assert str(tok.encode("小沈阳 hello")) in out.replace("\n", "")
    assert "tokens/char" in out
    code, out, err = cli(
        "encode",
        "-t",
        str(tmp_path / "tok.json"),
        "--corpus",
        str(corpus),
        "--out",
        str(tmp_path / "ids.bin"),
        "--eot",
        "<|endoftext|>",
    )
    assert code == 0, err
    assert load_token_file(tmp_path / "ids.bin").tolist() == tok.encode(TEXT) + [tok.eos_id]


def test_cli_errors_are_one_line(tmp_path, cli):
    gb = tmp_path / "gb.txt"
    gb.write_bytes("床前明月光".encode("gb18030"))
    code, out, err = cli(
        "tokenizer", "train", "--corpus", str(gb), "--vocab-size", "300", "--out", str(tmp_path / "t.json")
    )
    assert code == 2 and err.count("\n") == 1
    assert "tokvec: error: " in err and "gb.txt is not valid utf-8 at byte offset 0" in err and "--encoding" in err
    code, out, err = cli(
        "tokenizer", "train", "--corpus", str(gb), "--vocab-size", "100", "--out", str(tmp_path / "t.json")
    )
    assert code == 2 and "vocab_size 100 is below 256 + 0 special token(s) = 256" in err
    code, out, err = cli("tokenize", "-t", str(tmp_path / "missing.json"), "x")
    assert code == 2 and "no tokenizer file at" in err
