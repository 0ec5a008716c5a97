"""Byte-level BPE: training, ids pinned to references (pure-Python BPE, tiktoken, HF), interop, errors."""

from __future__ import annotations

import json
import random

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from tokvec import BPETokenizer, load_tokenizer
from tokvec.errors import FormatError, TokenIdError, TokvecError, TokvecTypeError, TokvecValueError
from tokvec.tokenizers.interop import printable_to_bytes
from tokvec.tokenizers.patterns import PATTERNS, for_oniguruma, resolve_pattern

# A small mixed corpus: English with contractions, numbers, Chinese, emoji, CRLF, tabs.
CORPUS = (
    "The quick brown fox jumps over the lazy dog. It's 12345 o'clock; we'll see, they're here!\n"
    "小沈阳江西演唱会邀请了，床前明月光，疑是地上霜。举头望明月，低头思故乡。\r\n"
    "lowest lower low newer newest wider 🙂👍🏽 naïve café\tTAB  spaces   end\n"
) * 30
TEXTS = [
    "小沈阳江西演唱会邀请了，hello world",
    "It's 2024-01-01: we'll pay $1,234.56 for   3 cafés\r\n\r\nok",
    "lowest newest 🙂👍🏽 e\u0301 \x00 NUL",
    "  leading and trailing  \n\n",
    "",
]


def reference_bpe(ranks: dict[bytes, int], pat_str: str, text: str) -> list[int]:
    """Straightforward BPE (as in tiktoken's _educational.py): split with the pattern, then in each
    piece merge the adjacent pair whose concatenation has the lowest rank until none is in ``ranks``."""
    ids: list[int] = []
    for piece in regex.findall(pat_str, text):
        parts = [bytes([b]) for b in piece.encode("utf-8")]
        while len(parts) > 1:
            pairs = [parts[i] + parts[i + 1] for i in range(len(parts) - 1)]
            best = min(range(len(pairs)), key=lambda i: ranks.get(pairs[i], float("inf")))
            if pairs[best] not in ranks:
                break
            parts[best : best + 2] = [pairs[best]]
        ids.extend(ranks[p] for p in parts)
    return ids


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    return BPETokenizer.train_from_texts([CORPUS], vocab_size=400, special_tokens=["<|endoftext|>", "<pad>"])


# -- patterns ----------------------------------------------------------------------------------
def test_named_patterns_are_tiktokens(monkeypatch):
    import tiktoken_ext.openai_public as openai_public

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})  # no download
    assert PATTERNS["gpt2"] == openai_public.r50k_pat_str
    assert PATTERNS["cl100k"] == openai_public.cl100k_base()["pat_str"]
    assert PATTERNS["o200k"] == openai_public.o200k_base()["pat_str"]


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_training_regex_engine_splits_like_tiktokens(name):
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(for_oniguruma(PATTERNS[name])), behavior="isolated")
    rng = random.Random(0)
    alphabet = list("ab AB\n\r\t's'LL 12345!?./小沈阳\u0301🙂  \x00é")
    for _ in range(1500):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert [p for p, _ in split.pre_tokenize_str(s)] == regex.findall(PATTERNS[name], s), repr(s)


def test_custom_pattern_errors():
    with pytest.raises(TokvecValueError, match=r"neither a known name .* nor a valid regex"):
        resolve_pattern("(unclosed")
    with pytest.raises(TokvecValueError, match=r"does not match every character.*tiktoken drops unmatched text"):
        resolve_pattern(r"\p{L}+")
    assert resolve_pattern(r"\p{L}+|\p{N}+|\s+|[\s\S]") == ("custom", r"\p{L}+|\p{N}+|\s+|[\s\S]")


# -- training ----------------------------------------------------------------------------------
def test_train_vocab_specials_after_merges_and_deterministic(tok):
    assert tok.vocab_size == 400 and tok.n_ranks == 398
    assert tok.special_tokens == {"<|endoftext|>": 398, "<pad>": 399}
    assert tok.eos_id == 398 and tok.pad_id == 399
    assert sorted(tok.ranks.values()) == list(range(398))
    assert all(tok.ranks[bytes([b])] == b for b in range(256))
    again = BPETokenizer.train_from_texts([CORPUS], vocab_size=400, special_tokens=["<|endoftext|>", "<pad>"])
    assert again.ranks == tok.ranks and again.fingerprint() == tok.fingerprint()


@pytest.mark.parametrize("pattern", ["gpt2", "cl100k", "o200k"])
def test_ids_match_reference_bpe_and_hf_trainer(pattern):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = BPETokenizer.train_from_texts([CORPUS], vocab_size=420, pattern=pattern, engine="hf")
    ranks = tok.ranks
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(for_oniguruma(PATTERNS[pattern])), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.train_from_iterator(
        [CORPUS],
        trainer=trainers.BpeTrainer(
            vocab_size=420, min_frequency=2, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    hf_bytes = {i: printable_to_bytes(t) for t, i in hf.get_vocab().items()}
    for text in TEXTS + [CORPUS[:2000]]:
        ids = tok.encode(text)
        assert ids == reference_bpe(ranks, PATTERNS[pattern], text)
        assert ids == [ranks[hf_bytes[i]] for i in hf.encode(text).ids]
    assert len(tok.encode("lowest")) == 1  # a frequent word became one token


# Sennrich et al. 2016's example words (low x5, lower x2, newest x6, widest x3), byte-level, gpt2 pattern.
SENNRICH = "low " * 5 + "lower " * 2 + "newest " * 6 + "widest " * 3
# The first 10 merges, in order, of Hugging Face tokenizers 0.23.3's BpeTrainer on SENNRICH (gpt2 split
# + ByteLevel, min_frequency 0, vocab 266), computed once with `tokenizers` and written here.
SENNRICH_HF_MERGES = [b"es", b"est", b"lo", b"low", b"ew", b"new", b" low", b" new", b" newest", b"dest"]


def test_first_merges_of_a_known_corpus_are_hfs_in_hfs_order():
    tok = BPETokenizer.train_from_texts([SENNRICH], vocab_size=266, pattern="gpt2", min_frequency=0, engine="hf")
    by_rank = sorted(tok.ranks.items(), key=lambda kv: kv[1])
    assert [t for t, _ in by_rank[256:]] == SENNRICH_HF_MERGES  # merge k has rank 256 + k


def test_ids_on_text_outside_the_corpus_equal_hfs_encoder_of_the_same_model():
    # HF's own encoder of the same trained model (not tokvec's ranks): merged tokens keep HF's ids
    # (256 + merge order); single bytes are tokvec's byte values. Texts never seen in training.
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

    tok = BPETokenizer.train_from_texts([SENNRICH], vocab_size=266, pattern="gpt2", min_frequency=0, engine="hf")
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(for_oniguruma(PATTERNS["gpt2"])), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.train_from_iterator(
        [SENNRICH],
        trainer=trainers.BpeTrainer(
            vocab_size=266, min_frequency=0, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    for text in ["slowest widow", "new lows", " newer west", "lowlowest newestnew"]:
        enc = hf.encode(text)
        want = [i if i >= 256 else printable_to_bytes(t)[0] for i, t in zip(enc.ids, enc.tokens)]
        assert tok.encode(text) == want, text
    # worked by hand from the merges above: "slowest" -> s|low|est
    assert tok.token_bytes("slowest") == [b"s", b"low", b"est"]


def test_train_from_files_with_globs(tmp_path):
    (tmp_path / "a.txt").write_text(CORPUS[:3000], encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text(CORPUS[3000:6000], encoding="utf-8")
    seen = []
    tok = BPETokenizer.train(
        [tmp_path / "a.txt", str(tmp_path / "sub" / "*.txt")], vocab_size=300, progress=seen.append
    )
    assert sum(seen) == (tmp_path / "a.txt").stat().st_size + (tmp_path / "sub" / "b.txt").stat().st_size
    assert tok.vocab_size == 300
    by_dir = BPETokenizer.train(tmp_path / "sub", vocab_size=300)  # a directory: every file below it
    assert by_dir.ranks == BPETokenizer.train(tmp_path / "sub" / "b.txt", vocab_size=300).ranks


def test_train_errors(tmp_path, error_says):
    with error_says(TokvecValueError, "vocab_size 257", "256 + 2 special token(s) = 258"):
        BPETokenizer.train_from_texts(["abc"], vocab_size=257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TokvecValueError, match=r"the training texts is empty"):
        BPETokenizer.train_from_texts([], vocab_size=300)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(TokvecValueError, match=r"the corpus \(.*empty.txt\) is empty"):
        BPETokenizer.train(empty, vocab_size=300)
    with error_says(TokvecValueError, "259 tokens", "3 merges", "vocab_size 1000", "allow_smaller=True"):
        BPETokenizer.train_from_texts(["abcd abcd"], vocab_size=1000)
    assert BPETokenizer.train_from_texts(["abcd abcd"], vocab_size=1000, allow_smaller=True).vocab_size == 259
    with pytest.raises(TokvecValueError, match=r"corpus pattern '.*nothing-\*.txt' matches no files"):
        BPETokenizer.train(str(tmp_path / "nothing-*.txt"), vocab_size=300)
    with pytest.raises(TokvecValueError, match=r"corpus file .*missing.txt does not exist"):
        BPETokenizer.train(tmp_path / "missing.txt", vocab_size=300)
    with pytest.raises(TokvecValueError, match=r"special token\(s\) \['<a>'\] listed twice"):
        BPETokenizer.train_from_texts(["abc"], vocab_size=300, special_tokens=["<a>", "<a>"])


def test_non_utf8_corpus_names_file_offset_and_fix(tmp_path, error_says):
    text = "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n" * 40
    gb = tmp_path / "poems-gb.txt"
    gb.write_bytes(("ascii first " + text).encode("gb18030"))
    with error_says(TokvecValueError, "poems-gb.txt", "utf-8", "byte offset 12", "--encoding", "gb18030"):
        BPETokenizer.train(gb, vocab_size=300)
    tok = BPETokenizer.train(gb, vocab_size=300, encoding="gb18030")
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 300


@pytest.mark.slow
# -- encoding and decoding ---------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_round_trip_any_unicode(tok, s):
    # special-token spellings as plain text: hypothesis also draws string constants from the source ('<pad>')
    ids = tok.encode(s, disallowed_special=())
    assert tok.decode(ids) == s
    assert tok.decode_bytes(ids) == s.encode("utf-8")


@pytest.mark.parametrize(
    "s",
    [
        "👩‍👩‍👧‍👦🙂👍🏽",
        "e\u0301\u0327 a\u030a",
        "a\r\nb\r\n\r\n",
        "\x00\x00x\x00",
        "小沈阳江西演唱会邀请了，",
        "\U0010ffff\ufeff\u200b",
        "   \t\n ",
    ],
)
def test_round_trip_edge_cases(tok, s):
    assert tok.decode(tok.encode(s)) == s


def test_decode_replaces_cut_characters_and_decode_bytes_is_exact(tok):
    ids = tok.encode("我")  # 3 bytes, no merge for it in this vocabulary -> 3 byte tokens
    assert tok.decode_bytes(ids) == "我".encode()
    assert tok.decode(ids[:2]) == "\ufffd"
    assert tok.decode_bytes(ids[:2]) == "我".encode()[:2]
    assert tok.tokens("我") == ["\\xe6", "\\x88", "\\x91"]


def test_stream_decoder_emits_only_whole_characters(tok):
    text = "小沈阳 hello 🙂👍🏽 e\u0301!"
    decoder = tok.stream_decoder()
    pieces = [decoder.push(i) for i in tok.encode(text)]
    assert "".join(pieces) + decoder.flush() == text
    assert "\ufffd" not in "".join(pieces)
    first = tok.encode("🙂")  # 4 bytes: nothing until the last one arrives
    d = tok.stream_decoder()
    assert [d.push(i) for i in first][:-1] == [""] * (len(first) - 1)
    d.push(first[:1])
    assert d.flush() == "\ufffd"  # a character cut at the end of the stream


def test_decode_bad_ids(tok, error_says):
    with error_says(TokenIdError, "token id 400", "position 2", "0..399"):
        tok.decode([1, 2, 400])
    with pytest.raises(TokenIdError, match=r"token id -1 at position 0"):
        tok.decode_bytes([-1])
    with pytest.raises(TokvecTypeError, match=r"token ids must be integers, got 1.5"):
        tok.decode([1.5])
    import numpy as np

    assert tok.decode(np.array(tok.encode("hello"), dtype=np.int64)) == "hello"


def test_special_tokens_disallowed_by_default(tok, error_says):
    with error_says(TokvecValueError, "'<|endoftext|>'", "character 1", "allowed_special={'<|endoftext|>'}"):
        tok.encode("x<|endoftext|>")
    assert tok.encode("x<|endoftext|>", allowed_special={"<|endoftext|>"}) == tok.encode("x") + [398]
    assert tok.encode("<pad><|endoftext|>", allowed_special="all") == [399, 398]
    plain = tok.encode("<pad>", disallowed_special=())
    assert 399 not in plain and tok.decode(plain) == "<pad>"
    with error_says(TokvecValueError, "allowed_special", "['<nope>']", "not special tokens"):
        tok.encode("x", allowed_special={"<nope>"})
    with pytest.raises(TokvecTypeError, match=r"text must be str, got bytes"):
        tok.encode(b"abc")


def test_encode_batch_equals_per_item_encode(tok):
    from tokvec.tokenizers.bpe import _BATCH_SEP

    rng = random.Random(1)
    lines = CORPUS.splitlines(keepends=True)
    items = [rng.choice(lines)[: rng.randint(0, 60)] for _ in range(3000)] + ["", " ", "\n", "a" + _BATCH_SEP + "b"]
    assert tok.encode_batch(items) == [tok.encode(t) for t in items]
    assert tok.encode_batch(items, num_threads=1) == [tok.encode(t) for t in items]
    with_special = ["a<pad>", "<|endoftext|>", "b"]
    assert tok.encode_batch(with_special, allowed_special="all") == [
        tok.encode(t, allowed_special="all") for t in with_special
    ]
    with pytest.raises(TokvecValueError, match=r"texts\[0\] contains the special token .<pad>. at character 1"):
        tok.encode_batch(with_special)
    assert tok.encode_batch([]) == []
    with pytest.raises(TokvecTypeError, match=r"texts\[1\] must be str, got int"):
        tok.encode_batch(["a", 3])
    with pytest.raises(TokvecTypeError, match=r"texts\[1\] must be str, got list"):
        tok.encode_batch(["a", ["b"]])


# -- saving, .tiktoken, tokenizer.json ----------------------------------------------------------
def test_save_and_load_json(tok, tmp_path):
    tok.save(tmp_path / "tok.json")
    back = load_tokenizer(tmp_path / "tok.json")
    assert isinstance(back, BPETokenizer)
    assert back.ranks == tok.ranks and back.special_tokens == tok.special_tokens and back.pattern == "cl100k"
    assert back.fingerprint() == tok.fingerprint()
    for text in TEXTS:
        assert back.encode(text) == tok.encode(text)
    saved = json.loads((tmp_path / "tok.json").read_text(encoding="utf-8"))
    assert saved["kind"] == "bpe" and saved["tokens"][32] == "Ġ"


def test_custom_pattern_survives_save(tmp_path):
    pat = r"\p{L}+|\p{N}|\s+|[\s\S]"
    tok = BPETokenizer.train_from_texts([CORPUS], vocab_size=300, pattern=pat)
    tok.save(tmp_path / "t.json")
    back = load_tokenizer(tmp_path / "t.json")
    assert back.pat_str == pat and back.encode("abc 123") == tok.encode("abc 123")


def test_tiktoken_file_round_trip(tok, tmp_path):
    from tiktoken.load import load_tiktoken_bpe

    path = tmp_path / "mine.tiktoken"
    tok.save_tiktoken(path)
    assert load_tiktoken_bpe(str(path)) == tok.ranks
    back = load_tokenizer(path)  # unknown name: cl100k pattern, no specials
    assert back.ranks == tok.ranks and back.special_tokens == {}
    assert back.encode(TEXTS[0]) == tok.encode(TEXTS[0])
    named = tmp_path / "cl100k_base.tiktoken"  # tiktoken's name: its pattern and specials
    tok.save_tiktoken(named)
    known = load_tokenizer(named)
    assert known.pattern == "cl100k" and known.special_tokens["<|endoftext|>"] == 100257


def test_malformed_tiktoken_line(tmp_path, error_says):
    path = tmp_path / "bad.tiktoken"
    lines = [f"{__import__('base64').b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    lines.insert(3, "this is not base64!! x")
    path.write_text("\n".join(lines) + "\n")
    with error_says(FormatError, "bad.tiktoken line 4", "'this is not base64!! x'", "'<base64 token> <rank>'"):
        load_tokenizer(path)
    short = tmp_path / "short.tiktoken"
    short.write_text("YQ== 0\n")
    with pytest.raises(TokvecValueError, match=r"ranks lack 255 single bytes"):
        load_tokenizer(short)


def _hf_train(model, trainer, pre_tokenizer=None):
    from tokenizers import Tokenizer

    hf = Tokenizer(model)
    if pre_tokenizer is not None:
        hf.pre_tokenizer = pre_tokenizer
    hf.train_from_iterator([CORPUS], trainer=trainer)
    return hf


def test_hf_byte_level_tokenizer_json(tmp_path):
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = _hf_train(
        models.BPE(),
        trainers.BpeTrainer(
            vocab_size=350,
            show_progress=False,
            special_tokens=["<|endoftext|>", "<pad>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    )
    hf.decoder = decoders.ByteLevel()
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    assert isinstance(tok, BPETokenizer)
    assert tok.special_tokens == {"<|endoftext|>": 0, "<pad>": 1} and tok.vocab_size == 350
    for text in TEXTS + [CORPUS[:3000]]:
        assert tok.encode(text) == hf.encode(text).ids
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("a<pad>", allowed_special="all") == hf.encode("a<pad>").ids


def test_from_hf_reads_the_same_tokenizer_and_refuses_other_json(tmp_path):
    from tokenizers import models, pre_tokenizers, trainers

    hf = _hf_train(
        models.BPE(),
        trainers.BpeTrainer(
            vocab_size=300,
            show_progress=False,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    )
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = BPETokenizer.from_hf(tmp_path / "tokenizer.json")
    assert tok.ranks == load_tokenizer(tmp_path / "tokenizer.json").ranks and tok.eos_id == 0
    assert tok.encode(TEXTS[0]) == hf.encode(TEXTS[0]).ids
    (tmp_path / "other.json").write_text('{"vocab": {}}', encoding="utf-8")
    with pytest.raises(FormatError, match=r"other.json is not a Hugging Face tokenizer.json"):
        BPETokenizer.from_hf(tmp_path / "other.json")


@pytest.mark.parametrize("kind", ["WordPiece", "Unigram"])
def test_hf_tokenizer_json_of_other_kinds(tmp_path, kind):
    from tokenizers import models, pre_tokenizers, trainers

    if kind == "WordPiece":
        hf = _hf_train(
            models.WordPiece(unk_token="[UNK]"),
            trainers.WordPieceTrainer(vocab_size=300, show_progress=False, special_tokens=["[UNK]"]),
            pre_tokenizers.Whitespace(),
        )
    else:
        hf = _hf_train(
            models.Unigram(), trainers.UnigramTrainer(vocab_size=100, show_progress=False), pre_tokenizers.Metaspace()
        )
    hf.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(
        FormatError,
        match=rf"tokenizer.json is a Hugging Face {kind} tokenizer; tokvec reads "
        r"only byte-level BPE",
    ):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_hf_bpe_that_is_not_byte_level(tmp_path):
    from tokenizers import models, pre_tokenizers, trainers

    hf = _hf_train(models.BPE(), trainers.BpeTrainer(vocab_size=300, show_progress=False), pre_tokenizers.Metaspace())
    hf.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(FormatError, match=r"is a BPE tokenizer but not byte-level \(pre_tokenizer 'Metaspace'"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_constructor_checks(error_says):
    byte_ranks = {bytes([b]): b for b in range(256)}
    with error_says(TokvecValueError, "'<x>'", "id 65", "already used"):
        BPETokenizer(byte_ranks, special_tokens={"<x>": 65})
    with error_says(TokvecValueError, "distinct", "[0, 4294967294]", "257 tokens", "256"):
        BPETokenizer({**byte_ranks, b"ab": 3})
    gappy = BPETokenizer(byte_ranks, special_tokens={"<x>": 300})
    assert gappy.vocab_size == 301
    with pytest.raises(TokenIdError, match=r"token id 299 at position 1 .*minus 44 unassigned"):
        gappy.decode([1, 299])


def test_errors_are_tokvec_errors():
    assert issubclass(TokenIdError, TokvecError) and issubclass(FormatError, TokvecError)
