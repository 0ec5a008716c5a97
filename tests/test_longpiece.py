"""Issue 11 item 16: text with no whitespace cut is cut only where no token spans the cut, and a long
run of letters (one pre-tokenisation piece) is encoded in bounded memory -- always to the ids of
encoding the text whole with tiktoken (the reference every test here compares against)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokvec import BPETokenizer, textstream
from tokvec.data import load_token_file, write_token_file
from tokvec.tokenizers import longpiece
from tokvec.tokenizers.longpiece import LongPieceError, PieceWindows

CJK = "的一是不了在人有我他"
EOT = "<|endoftext|>"
# small alphabets, so that a small vocabulary has many overlapping tokens (the hard case for joins)
_R = random.Random(0)
TRAIN = [
    "".join(_R.choice("abc") for _ in range(4000)),
    "".join(_R.choice(CJK[:4]) for _ in range(3000)),
    "abcab cabca bbcac AbC aBc ABC 123 4567 ,.;! x's don't\n" * 40,
]


@pytest.fixture(scope="module")
def toks() -> dict[str, BPETokenizer]:
    return {
        p: BPETokenizer.train_from_texts(
            TRAIN, vocab_size=420, pattern=p, special_tokens=[EOT, "[x]"], allow_smaller=True
        )
        for p in ("gpt2", "cl100k", "o200k")
    }


def _windows(tok: BPETokenizer, data: bytes, window: int, overlap: int, part: int) -> list[int]:
    """A piece's ids through PieceWindows, fed ``part`` bytes at a time."""
    pw = PieceWindows(tok._enc._encode_single_piece, tok._token_lengths(), window=window, overlap=overlap)
    out: list[int] = []
    for i in range(0, len(data), part):
        for ids in pw.feed(data[i : i + part]):
            out += ids.tolist()
    tail, pending = pw.finish()
    rest = tok._enc._encode_single_piece(tail) if tail else []  # (tiktoken panics on b"")
    return out + longpiece.stitch(pending, rest, tok._token_lengths()).tolist()


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("abc"), min_size=0, max_size=3000)
    | st.text(alphabet=st.sampled_from(CJK[:4]), min_size=0, max_size=1000),
    window=st.integers(60, 400),
    part=st.integers(1, 700),
)
def test_piece_in_windows_equals_the_whole_piece(toks, text, window, part):
    """Corollaries II/III of github/rust-gems' bpe README, checked: windows joined where they share a
    token give tiktoken's encoding of the whole piece (bytes; CJK tokens hold parts of characters)."""
    tok = toks["cl100k"]
    data = text.encode("utf-8")
    assert _windows(tok, data, window, 40, part) == (tok._enc._encode_single_piece(data) if data else [])


def test_piece_in_windows_scaled_issue_case(toks):
    """The issue's 18 MB of "abc", scaled down to 300 KB: windows of 4 KB give the whole piece's ids."""
    tok = toks["gpt2"]
    data = b"abc" * 100_000
    assert _windows(tok, data, 4096, 256, 50_000) == tok._enc._encode_single_piece(data)


def test_windows_that_never_agree_raise():
    """A vocabulary where each pair of letters merges before the pair on its left (ranks fall to the
    right): the encoding of a window depends on the parity of its length, two windows whose ends differ
    by an odd number of bytes share no token, and the join is refused rather than guessed."""
    letters = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1))
    ranks = {bytes([b]): b for b in range(256)}
    for k in range(len(letters) - 1):
        ranks[letters[k : k + 2]] = 256 + len(letters) - k
    tok = BPETokenizer(ranks, pattern="gpt2")
    enc = tok._enc._encode_single_piece
    assert enc(letters[:4]) == [ranks[b"AB"], ranks[b"CD"]] and enc(letters[:3]) == [ord("A"), ranks[b"BC"]]
    pw = PieceWindows(enc, tok._token_lengths(), window=20, overlap=7, margin=2)
    with pytest.raises(LongPieceError, match=r"window.*20 bytes.*window_bytes="):
        list(pw.feed(letters))


# -- safe cuts: exact for every named pattern ------------------------------------------------------
MIXED = "abAB的一1 2,;'\u0301\nǅ" + EOT[:3]


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "o200k"])
def test_every_safe_cut_splits_the_ids_exactly(toks, pattern):
    """Cut a random text at the cut safe_cut finds in each of its prefixes: the ids of the two sides
    are those of the whole text (letter then punctuation, digit then non-digit, specials kept whole)."""
    tok = toks[pattern]
    rng = random.Random(pattern)
    cuts = 0
    for _ in range(300):
        parts = [rng.choice([*MIXED, EOT, "don't", "ABc", "aBC"]) for _ in range(rng.randrange(2, 30))]
        text = "".join(parts)
        whole = tok.encode(text, allowed_special="all")
        for end in range(1, len(text) + 1):
            at = tok.safe_cut(text[:end])
            if at:
                cuts += 1
                left, right = text[:at], text[at:]
                assert tok.encode(left, allowed_special="all") + tok.encode(right, allowed_special="all") == whole, (
                    text,
                    at,
                )
    assert cuts > 1000


def test_safe_cut_after_letters_and_digits():
    byte_ranks = {bytes([b]): b for b in range(256)}
    tok = BPETokenizer(byte_ranks, pattern="o200k")
    assert tok.safe_cut("秦川雄帝宅，函谷壯皇居") == 5  # after the letter, before the punctuation
    assert tok.safe_cut("abc123def") == 6  # the last digit before a letter
    assert tok.safe_cut("don't") == 0  # o200k joins a contraction to its letters: never there
    assert tok.safe_cut("ab\u0301c") == 0  # a mark joins the letter before it (o200k)
    assert tok.safe_cut("helloWorld") == 5 and tok.safe_cut("的Ab") == 0  # o200k: lower, then upper
    tok = BPETokenizer(byte_ranks, special_tokens={EOT: 256})
    assert tok.safe_cut("的" * 14 + "x" + EOT + "的" * 20) == 15  # never inside <|endoftext|> ("t|")
    assert tok.safe_cut("x" + EOT + "的" * 20) == 0  # too near the start to see a special token before it
    custom = BPETokenizer(byte_ranks, pattern=r"\w+|\s+|[\s\S]")
    assert custom.safe_cut("one two, three") == 0


# -- long stretches --------------------------------------------------------------------------------
STRETCHES = {
    "abc": lambda r: "".join(r.choice("abc") for _ in range(12000)),
    "cjk": lambda r: "".join(r.choice(CJK[:4]) for _ in range(5000)),
    "cjk-specials": lambda r: EOT.join("".join(r.choice(CJK[:4]) for _ in range(r.randrange(900))) for _ in range(9)),
    "case": lambda r: "".join(r.choice("aAbB") for _ in range(12000)),
    "ends": lambda r: "".join(
        "".join(r.choice("abc") for _ in range(3000)) + r.choice(["'s", "'", "\u0301", "'ll的", "'S"]) for _ in range(4)
    ),
    # "[x]" then letters: the pattern alone would start the letter piece at "]", inside the special token
    "special-then-run": lambda r: "[x]".join(
        "".join(r.choice(CJK[:4]) for _ in range(r.randrange(900))) for _ in range(9)
    ),
    "symbols-then-run": lambda r: "!?" * 700 + "".join(r.choice("ab") for _ in range(3000)) + "，" + "ab" * 700,
}


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "o200k"])
@pytest.mark.parametrize("shape", sorted(STRETCHES))
def test_token_file_of_long_stretches_equals_whole_file(toks, pattern, shape, tmp_path, monkeypatch):
    """Files over every threshold, made small: blocks of 97 bytes, stretches handed on every 200
    characters, runs from 50 characters, windows of 600 bytes. Every text handed to tiktoken stays
    under 2 windows + 2 parts of UTF-8 (recorded through a wrapper around the tiktoken encoder)."""
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 97)
    monkeypatch.setattr(textstream, "LONG_CARRY_CHARS", 200)
    monkeypatch.setattr(longpiece, "MIN_RUN_CHARS", 50)
    monkeypatch.setattr(longpiece, "WINDOW_BYTES", 600)
    monkeypatch.setattr(longpiece, "OVERLAP_BYTES", 64)
    tok = toks[pattern]
    text = STRETCHES[shape](random.Random(shape))
    whole = tok.encode(text, allowed_special="all")
    longest = _record_longest(tok, monkeypatch)
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin", allowed_special="all", num_threads=2)
    assert load_token_file(tmp_path / "ids.bin", tokenizer=tok).tolist() == whole
    bound = 2 * 600 + 2 * 3 * (200 + 97)
    if shape != "symbols-then-run":  # the 1400 symbols before its run are one piece: encoded whole
        assert max(longest) <= bound < len(text.encode()) / 3, (len(text.encode()), max(longest))


def _record_longest(tok, monkeypatch) -> list[int]:
    """Lengths in bytes of every text and piece handed to tiktoken from now on."""
    seen = [0]
    enc = tok._enc

    class Enc:
        def __getattr__(self, name):
            attr = getattr(enc, name)
            if "encode" not in name:
                return attr

            def wrapped(text, *a, **k):
                seen.append(len(text if isinstance(text, bytes) else text.encode("utf-8")))
                return attr(text, *a, **k)

            return wrapped

    monkeypatch.setattr(tok, "_encoder", Enc())
    return seen


def test_custom_pattern_stretch_is_encoded_whole(tmp_path, monkeypatch):
    """A custom pattern promises no cut: its stretch is gathered and encoded whole (same ids)."""
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 97)
    monkeypatch.setattr(textstream, "LONG_CARRY_CHARS", 300)
    tok = BPETokenizer.train_from_texts(TRAIN, vocab_size=300, pattern=r"\w+|\s+|[\s\S]")
    text = "abc" * 2000 + " de, f" * 100
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin")
    assert load_token_file(tmp_path / "ids.bin").tolist() == tok.encode(text)


def test_stretch_errors_name_the_file(toks, tmp_path, monkeypatch, error_says):
    """A disallowed special token inside a long stretch is refused as before, naming the file."""
    monkeypatch.setattr(textstream, "BLOCK_BYTES", 97)
    monkeypatch.setattr(textstream, "LONG_CARRY_CHARS", 300)
    monkeypatch.setattr(longpiece, "MIN_RUN_CHARS", 50)
    text = "ab" * 1000 + EOT + "ab" * 1000
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    with error_says(ValueError, "a.txt", repr(EOT), "allowed_special"):
        write_token_file(toks["cl100k"], tmp_path / "a.txt", tmp_path / "ids.bin")
    assert not (tmp_path / "ids.bin").exists()


def test_stretch_parts_end_with_a_plain_chunk(tmp_path):
    """A stretch handed on in Unfinished parts always ends with a plain str, even when the file ends
    right after a part, so the next file's chunks are never taken as its continuation."""
    (tmp_path / "a.txt").write_text("x" * 400, encoding="utf-8")
    chunks = list(
        textstream.iter_file_chunks(
            tmp_path / "a.txt", block_bytes=100, cut=lambda t: 0, max_carry=None, long_carry=200
        )
    )
    assert [type(c).__name__ for c in chunks] == ["Unfinished", "Unfinished", "str"]
    assert "".join(chunks) == "x" * 400 and chunks[-1] == ""


def test_encode_stretch_api(toks):
    """encode_stretch(parts) == encode_to_numpy of the joined parts, for parts cut anywhere."""
    tok = toks["o200k"]
    rng = random.Random(7)
    text = "".join(rng.choice("ab的") for _ in range(20_000))
    parts = [text[i : i + 777] for i in range(0, len(text), 777)]
    got = np.concatenate(list(tok.encode_stretch(parts, window_bytes=2048)))
    assert got.tolist() == tok.encode(text)


@settings(max_examples=150, deadline=None)
@given(
    pattern=st.sampled_from(["gpt2", "cl100k", "o200k"]),
    runs=st.lists(
        st.tuples(st.sampled_from(["ab", "aAb", CJK[:3], "ab\u0301", "12", "!?", " \n", "x's"]), st.integers(0, 400)),
        min_size=1,
        max_size=6,
    ),
    seps=st.lists(st.sampled_from(["", EOT, "'", "'s", "'ll", "\u0301", "，", "A", "1", " "]), min_size=6, max_size=6),
    cut=st.integers(1, 500),
    seed=st.integers(0, 2**16),
)
def test_encode_stretch_equals_encode(toks, pattern, runs, seps, cut, seed):
    """Runs of every kind, joined by what can end (or continue) a piece, cut into parts anywhere."""
    rng = random.Random(seed)
    text = "".join(sep + "".join(rng.choice(alpha) for _ in range(n)) for (alpha, n), sep in zip(runs, seps))
    tok = toks[pattern]
    parts = [text[i : i + cut] for i in range(0, len(text), cut)]
    old = longpiece.MIN_RUN_CHARS
    longpiece.MIN_RUN_CHARS = 40
    try:
        got = np.concatenate(
            [np.zeros(0, np.uint32), *tok.encode_stretch(parts, allowed_special="all", window_bytes=400)]
        )
    finally:
        longpiece.MIN_RUN_CHARS = old
    assert got.tolist() == tok.encode(text, allowed_special="all")


def test_stretch_of_a_tokenizer_without_encode_stretch_is_encoded_whole(tmp_path, monkeypatch):
    """A word tokenizer with a user segmenter has no safe cut and no encode_stretch: its Unfinished
    parts are joined and encoded whole (same ids as before)."""
    from tokvec.tokenizers import WordTokenizer

    monkeypatch.setattr(textstream, "BLOCK_BYTES", 97)
    monkeypatch.setattr(textstream, "LONG_CARRY_CHARS", 300)
    text = "alpha beta gamma\n" * 200
    tok = WordTokenizer.train([text], segmenter=str.split)
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    write_token_file(tok, tmp_path / "a.txt", tmp_path / "ids.bin")
    assert load_token_file(tmp_path / "ids.bin").tolist() == tok.encode(text)


def test_sparse_ranks_are_encoded_whole():
    """Ranks too sparse for a length table (one rank at 10**7): the stretch is encoded whole."""
    ranks = {bytes([b]): b for b in range(256)} | {b"ab": 10**7}
    tok = BPETokenizer(ranks, pattern="cl100k")
    text = "ab" * 5000
    assert tok._token_lengths() is None
    got = np.concatenate(list(tok.encode_stretch([text[:3000], text[3000:]], window_bytes=1024)))
    assert got.tolist() == tok.encode(text) == [10**7] * 5000


def test_a_piece_that_goes_on_after_its_run_is_taken_up_again(toks, monkeypatch):
    """o200k: a run of Chinese, then "A", then lowercase letters is one piece ("的的Aab"); the windows
    stop at "A" (not a run character) and take the piece up again where the next run starts."""
    monkeypatch.setattr(longpiece, "MIN_RUN_CHARS", 40)
    tok = toks["o200k"]
    rng = random.Random(3)
    text = "".join(rng.choice(CJK[:3]) for _ in range(1000)) + "A" + "".join(rng.choice("ab") for _ in range(2000))
    for cut in (1, 7, 500):
        parts = [text[i : i + cut] for i in range(0, len(text), cut)]
        got = np.concatenate(list(tok.encode_stretch(parts, window_bytes=400)))
        assert got.tolist() == tok.encode(text)
