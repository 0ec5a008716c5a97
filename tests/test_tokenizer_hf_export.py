"""Tokenizer export: a tokenizer.json that transformers' AutoTokenizer loads gives tokvec's ids exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

from tokvec.errors import TokvecError  # noqa: E402
from tokvec.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer, load_tokenizer  # noqa: E402
from tokvec.tokenizers.hf_export import bpe_merges  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data next to the repository (a worktree sits one level deeper)
DATA = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if p.is_dir()), None)

HARD = [
    "小沈阳江西演唱会邀请了，“你好”！",
    "👩‍👩‍👧‍👦 family 🏳️‍🌈 flag 👍🏽",
    "line one\r\nline two\r\n\r\n",
    "   leading spaces and trailing   ",
    "nul\x00inside\x00",
    "tabs\tand\x0bvertical\x0c",
    "naïve café e\u0301",
    "I'll pay 12345 now! 123456789",
    "x86_64 __init__ a_b",
    "\u3000全角　空格",
    "𠀀𠀁 astral CJK",
    "",
]
TRAIN = (
    "The quick brown fox jumps over the lazy dog. It's 2024!\r\n小沈阳江西演唱会邀请了。床前明月光，疑是地上霜。\n"
    "Shall I compare thee to a summer's day? 👍🏽 x86_64\n"
) * 30


def _corpus_sample() -> list[str]:
    if DATA is None:
        return []
    out = []
    for name in ("tinyshakespeare.txt", "tang-poems.txt"):
        path = DATA / name
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            out.append(text[:20000])
    return out


def _auto(tok, tmp_path):
    tok.save_hf(tmp_path / "hf")
    return transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")


def _same_ids(tok, auto, texts):
    for text in texts:
        assert auto(text, add_special_tokens=False)["input_ids"] == tok.encode(text), repr(text[:60])


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "o200k"])
def test_bpe_ids_equal(pattern, tmp_path):
    tok = BPETokenizer.train_from_texts(
        [TRAIN] + _corpus_sample(), vocab_size=600, pattern=pattern, special_tokens=["<|endoftext|>"]
    )
    auto = _auto(tok, tmp_path)
    _same_ids(tok, auto, HARD + [TRAIN] + _corpus_sample())
    assert auto.eos_token == "<|endoftext|>" and auto.eos_token_id == tok.eos_id
    assert auto.decode(tok.encode(HARD[1])) == HARD[1]
    # and tokvec reads its own export back as the same tokenizer
    assert load_tokenizer(tmp_path / "hf" / "tokenizer.json").fingerprint() == tok.fingerprint()


def test_bpe_merges_follow_rank_order():
    # every split into two lower-ranked tokens, ordered by the rank made (tiktoken's rule in HF's terms)
    ranks = {b"a": 0, b"b": 1, b"c": 2, b"ab": 3, b"bc": 4, b"abc": 5}
    assert bpe_merges(ranks) == [(b"a", b"b"), (b"b", b"c"), (b"a", b"bc"), (b"ab", b"c")]


def test_char_ids_equal(tmp_path):
    tok = CharTokenizer.train([TRAIN] + HARD[:-2] + _corpus_sample())
    auto = _auto(tok, tmp_path)
    _same_ids(tok, auto, HARD + _corpus_sample())  # unseen characters -> <unk> on both sides
    assert tok.unk_id in tok.encode(HARD[-2])
    assert auto.decode(tok.encode("你好 world")) == tok.decode(tok.encode("你好 world"))


def test_char_normalization_exported(tmp_path):
    tok = CharTokenizer.train([TRAIN + "é"], normalization="NFC")
    auto = _auto(tok, tmp_path)
    _same_ids(tok, auto, ["e\u0301 café"])


def test_word_ids_equal(tmp_path):
    tok = WordTokenizer.train([TRAIN] + HARD[:-3] + _corpus_sample())
    auto = _auto(tok, tmp_path)
    _same_ids(tok, auto, HARD + _corpus_sample())


@pytest.mark.slow  # a sweep over every assigned character of planes 0-2
def test_word_split_matches_python_on_every_bmp_character(tmp_path):
    """The Oniguruma spelling of WORD_PATTERN cuts like Python's re on every assigned character of the
    BMP and of planes 1-2. Characters newer than Python's Unicode database (``unicodedata.unidata_version``,
    14.0 on Python 3.11) are letters to Oniguruma and unassigned to Python: those may cut differently."""
    import unicodedata

    from tokenizers import Regex, pre_tokenizers

    from tokvec.tokenizers.hf_export import _word_split_regex
    from tokvec.tokenizers.word import _WORD_RE, CJK

    split = pre_tokenizers.Split(Regex(_word_split_regex(CJK)), behavior="isolated")
    chars = [
        chr(c) for c in list(range(1, 0xD800)) + list(range(0xE000, 0x30000)) if unicodedata.category(chr(c)) != "Cn"
    ]
    text = "".join(f"a{c}b {c}{c}" for c in chars)
    for a in range(0, len(text), 60000):
        chunk = text[a : a + 60000]
        assert [p for p, _ in split.pre_tokenize_str(chunk)] == _WORD_RE.findall(chunk)


def test_export_refusals_name_the_reason(tmp_path):
    tok = WordTokenizer.train([TRAIN], segmenter=str.split)
    with pytest.raises(TokvecError, match=r"segmenter.*str\.split"):
        tok.save_hf(tmp_path / "a")
    tok = WordTokenizer.train([TRAIN], keep_whitespace=False)
    with pytest.raises(TokvecError, match=r"keep_whitespace=False.*keep_whitespace=True"):
        tok.save_hf(tmp_path / "b")
