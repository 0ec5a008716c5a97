import json
import re
import unicodedata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokvec import CharTokenizer, FormatError, TokenIdError, WordTokenizer, load_tokenizer
from tokvec.errors import TokvecTypeError, TokvecValueError
from tokvec.tokenizers import WORD_PATTERN

CORPUS = "你好嗎？我很好。Hello, world! 小沈阳江西演唱会邀请了,\n"


# -- CharTokenizer ------------------------------------------------------------------------------
def test_char_issue_example():
    tok = CharTokenizer.train(["你好嗎"])
    assert tok.vocab_size == 7
    assert [tok.vocab.id_to_token(i) for i in range(4)] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    ids = tok.encode("你好好嗎嗎")
    assert ids == [4, 5, 5, 6, 6]  # repeated characters share an id
    assert tok.decode(ids) == "你好好嗎嗎"
    assert tok.tokens("你好") == ["你", "好"]


def test_char_bare_string_is_one_text():
    assert CharTokenizer.train("你好").vocab_size == CharTokenizer.train(["你好"]).vocab_size == 6


def test_char_unknown_decodes_to_unk_string():
    tok = CharTokenizer.train(["ab"])
    ids = tok.encode("a你b")
    assert ids == [4, 1, 5]
    assert tok.decode(ids) == "a<unk>b"


def test_bos_eos_and_skip_special():
    tok = CharTokenizer.train(["ab"])
    ids = tok.encode("ab", add_bos=True, add_eos=True)
    assert ids == [2, 4, 5, 3]
    assert tok.decode(ids) == "<bos>ab<eos>"
    assert tok.decode(ids, skip_special_tokens=True) == "ab"


def test_decode_accepts_tensors_and_rejects_bad_ids(error_says):
    tok = CharTokenizer.train(["ab"])
    assert tok.decode(torch.tensor([4, 5])) == "ab"
    with error_says(TokenIdError, "token id 9", "position 1", "vocab_size 6"):
        tok.decode([4, 9])
    with error_says(TokvecTypeError, "integers", "torch.float32"):
        tok.decode(torch.tensor([4.0]))
    with pytest.raises(TokvecTypeError, match="decode takes one sequence of ids"):
        tok.decode(torch.tensor([[4, 5]]))


def test_empty_text():
    tok = CharTokenizer.train([CORPUS])
    assert tok.encode("") == [] and tok.decode([]) == ""


def test_normalization_nfkc_folds_fullwidth(error_says):
    tok = CharTokenizer.train(["ＡＢ１"], normalization="nfkc")
    assert tok.normalization == "NFKC"
    assert tok.tokens("ＡＢ１") == ["A", "B", "1"]
    assert tok.encode("AB1") == tok.encode("ＡＢ１")
    with error_says(TokvecValueError, "'NFX'", "NFC, NFKC, NFD, NFKD"):
        CharTokenizer.train(["a"], normalization="NFX")


def test_encode_batch():
    tok = CharTokenizer.train([CORPUS])
    texts = ["你好", "", "Hello"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(sorted(set(CORPUS))), max_size=60))
def test_char_round_trip_for_text_in_vocabulary(s):
    tok = _CHAR
    assert tok.decode(tok.encode(s)) == s


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_char_round_trip_any_text_when_trained_on_it(s):
    tok = CharTokenizer.train([s])
    assert tok.decode(tok.encode(s)) == s


_CHAR = CharTokenizer.train([CORPUS])


# -- WordTokenizer ------------------------------------------------------------------------------
def test_word_split_documented_regex():
    tok = WordTokenizer.train([CORPUS])
    assert tok.tokens("小沈阳江西演唱会邀请了,") == [
        "小",
        "沈",
        "阳",
        "江",
        "西",
        "演",
        "唱",
        "会",
        "邀",
        "请",
        "了",
        ",",
    ]
    assert tok.tokens("Hello, world!  x86_64") == ["Hello", ",", " ", "world", "!", "  ", "x86_64"]
    assert tok.tokens("我很好。") == ["我", "很", "好", "。"]
    assert "\\s+" in WORD_PATTERN


def test_word_vocab_and_unknown():
    tok = WordTokenizer.train(["the cat and the hat"], keep_whitespace=False)
    assert list(tok.vocab)[4:] == ["the", "cat", "and", "hat"]
    assert tok.encode("the dog") == [4, 1]
    assert tok.decode(tok.encode("the dog")) == "the <unk>"


def test_word_without_whitespace_joins_words_with_spaces():
    tok = WordTokenizer.train([CORPUS], keep_whitespace=False)
    assert tok.decode(tok.encode("Hello, world!")) == "Hello, world!"
    assert tok.decode(tok.encode("你好嗎？")) == "你好嗎？"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_word_pattern_covers_every_character(s):
    # every character matches exactly one branch, so splitting is lossless for any string
    assert "".join(WordTokenizer.train([]).tokens(s)) == s


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_word_round_trip_when_trained_on_it(s):
    tok = WordTokenizer.train([s])
    assert tok.decode(tok.encode(s)) == s


def test_word_with_segmenter_and_save_load(tmp_path, error_says):
    words = {"小沈阳": True, "江西": True, "演唱会": True, "邀请": True}

    def greedy(text):  # a toy maximum-match segmenter standing in for jieba.lcut
        out, i = [], 0
        while i < len(text):
            for n in (3, 2, 1):
                if text[i : i + n] in words or n == 1:
                    out.append(text[i : i + n])
                    i += n
                    break
        return out

    tok = WordTokenizer.train(["小沈阳江西演唱会邀请了,"], segmenter=greedy)
    assert tok.tokens("小沈阳江西演唱会邀请了,") == ["小沈阳", "江西", "演唱会", "邀请", "了", ","]
    path = tmp_path / "word.json"
    tok.save(path)
    with error_says(TokvecValueError, re.compile(r"segmenter '.*greedy'"), "load_tokenizer(path, segmenter"):
        load_tokenizer(path)
    again = load_tokenizer(path, segmenter=greedy)
    assert again.encode("小沈阳江西") == tok.encode("小沈阳江西")


# -- save / load --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
def test_save_load_round_trip(cls, tmp_path):
    tok = cls.train([CORPUS], normalization="NFC")
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "tokvec.tokenizer" and data["version"] == 1 and data["kind"] == tok.kind
    again = load_tokenizer(path)
    assert type(again) is cls and again.normalization == "NFC"
    assert again.encode(CORPUS) == tok.encode(CORPUS)
    assert again.fingerprint() == tok.fingerprint()


def test_load_refuses_foreign_files(tmp_path, error_says):
    vocab_file = tmp_path / "vocab.json"
    CharTokenizer.train(["ab"]).vocab.save(vocab_file)
    with error_says(FormatError, "not a tokenizer file", "'tokvec.vocab'"):
        load_tokenizer(vocab_file)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"format": "tokvec.tokenizer", "version": 1, "kind": "nope"}))
    with error_says(FormatError, "'kind'", "'char', 'word'", "'nope'"):
        load_tokenizer(odd)
    with pytest.raises(FileNotFoundError, match="no tokenizer file at"):
        load_tokenizer(tmp_path / "missing.json")


def test_nfd_text_without_normalization_keeps_code_points():
    nfd = unicodedata.normalize("NFD", "é")
    tok = CharTokenizer.train([nfd])
    assert tok.tokens(nfd) == ["e", "\u0301"]
    assert tok.decode(tok.encode(nfd)) == nfd
