import json

import pytest

from tokvec import CharTokenizer, FormatError, TokenIdError, UnknownTokenError, Vocabulary, load_tokenizer
from tokvec.errors import TokvecValueError


def test_specials_first_then_frequency_then_first_appearance():
    # counts: a=5 b=2 r=2 c=1 d=1; b appears before r, c before d
    v = Vocabulary.build("abracadabra")
    assert list(v) == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "r", "c", "d"]
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v.token_to_id("a") == 4 and v.id_to_token(6) == "r"
    assert len(v) == 9 and "c" in v and "z" not in v


def test_frequency_ties_go_to_first_appearance_not_last():
    # a and b both appear twice, a first. Ordered by last appearance, "abba" would give b, a; counted
    # from the end, "abab" would give b, a.
    assert list(Vocabulary.build("abba", specials=[])) == ["a", "b"]
    assert list(Vocabulary.build("abab", specials=[])) == ["a", "b"]
    assert list(Vocabulary.build("baab", specials=[])) == ["b", "a"]
    assert list(Vocabulary.build("xyzzxyx", specials=[], max_size=2)) == ["x", "y"]  # x3, then y/z tie: y first


def test_build_is_deterministic_whatever_the_hash_seed():
    tokens = list("the quick brown fox jumps over the lazy dog")
    assert list(Vocabulary.build(tokens)) == list(Vocabulary.build(list(tokens)))


def test_min_freq_and_max_size():
    v = Vocabulary.build("aaabbc", min_freq=2)
    assert list(v)[4:] == ["a", "b"]
    v = Vocabulary.build("aaabbc", max_size=5)  # 4 specials + the single most frequent token
    assert list(v)[4:] == ["a"] and len(v) == 5


def test_unknown_maps_to_unk_or_raises_without_unk(error_says):
    v = Vocabulary.build("ab")
    assert v.token_to_id("zzz") == v.unk_id == 1
    assert v.lookup_ids(["a", "q", "b"]) == [4, 1, 5]
    strict = Vocabulary.build("ab", specials=["<pad>"], unk_token=None)
    assert strict.unk_id is None
    with error_says(UnknownTokenError, "'q'", "3 tokens", "no unk"):
        strict.token_to_id("q")


def test_id_out_of_range_names_id_position_and_size(error_says):
    v = Vocabulary.build("ab")
    with error_says(TokenIdError, "token id 6", "vocab_size 6", "[0, 5]"):
        v.id_to_token(6)
    with error_says(TokenIdError, "token id -1", "position 2", "vocab_size 6"):
        v.lookup_tokens([4, 5, -1])


@pytest.mark.parametrize(
    "kwargs, facts",
    [
        ({"min_freq": 0}, ("min_freq", ">= 1", "got 0")),
        ({"max_size": 3}, ("max_size 3", "4 special tokens")),
    ],
)
def test_bad_build_arguments(kwargs, facts, error_says):
    with error_says(TokvecValueError, *facts):
        Vocabulary.build("abc", **kwargs)


def test_duplicate_specials_refused():
    with pytest.raises(TokvecValueError, match="special tokens must be distinct"):
        Vocabulary(["a"], specials=["<pad>", "<pad>"])


def test_save_load_round_trip(tmp_path):
    v = Vocabulary.build("你好好嗎嗎 hello", min_freq=1)
    path = tmp_path / "vocab.json"
    v.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "tokvec.vocab" and data["version"] == 1
    assert "你" in data["tokens"]  # stored as readable UTF-8, not \u escapes
    assert "你" in path.read_text(encoding="utf-8")
    w = Vocabulary.load(path)
    assert w == v and list(w) == list(v) and w.unk_token == "<unk>"


def test_load_refuses_other_format_and_version(tmp_path, error_says):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something.else", "version": 1}))
    with error_says(FormatError, "'something.else'", "'tokvec.vocab'"):
        Vocabulary.load(other)
    future = tmp_path / "future.json"
    future.write_text(json.dumps({"format": "tokvec.vocab", "version": 99, "tokens": [], "specials": []}))
    with error_says(FormatError, "version 99", "version 1"):
        Vocabulary.load(future)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "tokvec.vocab",\n "version": 1,,}')
    with error_says(FormatError, "broken.json", "JSON", "line 2"):
        Vocabulary.load(broken)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "v.json"
    Vocabulary.build("ab").save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(json, "dump", boom)
    with pytest.raises(RuntimeError):
        Vocabulary.build("xyz").save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json"]


def test_saved_files_follow_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        Vocabulary.build("ab").save(tmp_path / "v.json")
    finally:
        os.umask(old)
    assert (tmp_path / "v.json").stat().st_mode & 0o777 == 0o644


def test_first_appearance_order_without_specials_gives_the_tutorials_ids(tmp_path, error_says):
    """The classic tutorials' toy vocabulary: {你: 0, 好: 1, 嗎: 2} for "你好好嗎嗎"."""
    v = Vocabulary.build("你好好嗎嗎", specials=(), unk_token=None, order="first")
    assert list(v) == ["你", "好", "嗎"] and v.lookup_ids("你好好嗎嗎") == [0, 1, 1, 2, 2]
    assert v.pad_id is None and v.specials == ()
    # by frequency (the default) 好 and 嗎 (twice each) come before 你 (once)
    assert Vocabulary.build("你好好嗎嗎", specials=()).lookup_ids("你好嗎") == [2, 0, 1]
    # max_size keeps the first seen
    assert list(Vocabulary.build("cabbage", specials=(), order="first", max_size=3)) == ["c", "a", "b"]
    tok = CharTokenizer.train(["你好好嗎嗎"], specials=(), order="first")
    assert tok.encode("你好好嗎嗎") == [0, 1, 1, 2, 2] and tok.vocab_size == 3
    tok.save(tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json").encode("嗎你") == [2, 0]
    with error_says(UnknownTokenError, "'們'", "3 tokens", "no unk"):
        tok.encode("你們")
    with error_says(TokvecValueError, "'alphabetical'", "frequency, first"):
        Vocabulary.build("ab", order="alphabetical")
