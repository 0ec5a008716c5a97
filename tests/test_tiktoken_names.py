"""tiktoken's encodings by name: the registry read without downloading, tiktoken's cache, the offline error.

No real cl100k_base file is on the test machine. The cache route is tested with a small BPE (trained
here with cl100k's pattern) saved under cl100k's cache name. tiktoken checks the sha256 of a cached
blob against the hash written in its constructor, which a small file cannot match; so the test
swaps in a constructor identical to tiktoken's cl100k_base (same URL, pattern and specials, read
from the registry) except for that expected hash, which is the small file's. Everything else --
tiktoken's cache lookup, its hash check, its parser -- runs unchanged. Nothing may touch the network:
``tiktoken.load.read_file`` (its download path) is made to fail the test if called.
"""

import hashlib
import re

import pytest
import tiktoken
import tiktoken.load
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public

from tokvec import load_tokenizer
from tokvec.errors import FormatError, TokvecValueError
from tokvec.tokenizers import BPETokenizer
from tokvec.tokenizers.patterns import PATTERNS
from tokvec.tokenizers.tiktoken_names import ENCODING_NAMES, registry_entry, tiktoken_cache_dir

SENTENCE = "小沈阳江西演唱会邀请了,"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(blobpath):
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)


@pytest.fixture
def small_cl100k(tmp_path, monkeypatch, no_network):
    """A small cl100k-pattern BPE in a tiktoken cache dir under cl100k_base's cache name."""
    # not trained on SENTENCE itself, so that it splits into several pieces as it does in cl100k
    # engine="hf": on so small a corpus most pair counts tie, and the tests below count SENTENCE's tokens
    # under HF's tie-breaking (rustbpe breaks ties by pair ids and gives SENTENCE 19 tokens, not < 16)
    tok = BPETokenizer.train_from_texts(
        ["江西的演唱会 请了小明 阳光 " * 10, "the cat sat on the mat. " * 20],
        vocab_size=300,
        pattern="cl100k",
        engine="hf",
    )
    cache = tmp_path / "tiktoken-cache"
    real = registry_entry("cl100k_base")
    blob = real.files[0]
    tok.save_tiktoken(cache / blob.cache_name)
    sha = hashlib.sha256((cache / blob.cache_name).read_bytes()).hexdigest()

    def cl100k_base():  # tiktoken's constructor with only the expected hash changed (see the module docstring)
        return {
            "name": "cl100k_base",
            "pat_str": real.pat_str,
            "mergeable_ranks": load_tiktoken_bpe(blob.url, expected_hash=sha),
            "special_tokens": real.special_tokens,
        }

    monkeypatch.setitem(openai_public.ENCODING_CONSTRUCTORS, "cl100k_base", cl100k_base)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return tok, cache / blob.cache_name


def test_the_name_table_is_tiktokens_registry(monkeypatch):
    """Each entry equals what the real constructor gives when its loaders are intercepted here, and
    the cl100k/o200k values are the published ones."""
    for name in ENCODING_NAMES:
        seen = []
        monkeypatch.setattr(
            openai_public, "load_tiktoken_bpe", lambda url, expected_hash=None: seen.append((url, expected_hash)) or {}
        )
        monkeypatch.setattr(
            openai_public,
            "data_gym_to_mergeable_bpe_ranks",
            lambda **k: (
                seen.extend(
                    [(k["vocab_bpe_file"], k["vocab_bpe_hash"]), (k["encoder_json_file"], k["encoder_json_hash"])]
                )
                or {}
            ),
        )
        spec = openai_public.ENCODING_CONSTRUCTORS[name]()
        monkeypatch.undo()
        entry = registry_entry(name)
        assert [(f.url, f.sha256) for f in entry.files] == seen
        assert entry.pat_str == spec["pat_str"] and entry.special_tokens == spec["special_tokens"]
    cl100k = registry_entry("cl100k_base")
    assert cl100k.special_tokens == {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    }
    assert cl100k.pat_str == PATTERNS["cl100k"] and cl100k.files[0].url == CL100K_URL
    assert (
        cl100k.files[0].cache_name
        == hashlib.sha1(CL100K_URL.encode()).hexdigest()
        == "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
    )
    assert registry_entry("o200k_base").special_tokens == {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
    assert registry_entry("o200k_base").pat_str == PATTERNS["o200k"]
    assert registry_entry("r50k_base").pat_str == registry_entry("gpt2").pat_str == PATTERNS["gpt2"]
    assert len(registry_entry("gpt2").files) == 2  # vocab.bpe + encoder.json


def test_cache_dir_follows_tiktokens_rule(monkeypatch, tmp_path):
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert tiktoken_cache_dir() == tmp_path
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert tiktoken_cache_dir() is None
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path / "g"))
    assert tiktoken_cache_dir() == tmp_path / "g"


def test_cache_dir_route_loads_through_tiktokens_cache(small_cl100k):
    small, _ = small_cl100k
    tok = load_tokenizer("cl100k_base")
    assert isinstance(tok, BPETokenizer) and tok.pattern == "cl100k"
    assert tok.special_tokens == registry_entry("cl100k_base").special_tokens
    assert tok.vocab_size == 100277 and tok.text_vocab_size == small.n_ranks == 300
    reference = tiktoken.Encoding(
        "ref", pat_str=PATTERNS["cl100k"], mergeable_ranks=small.ranks, special_tokens=tok.special_tokens
    )
    text = SENTENCE + " the cat<|endoftext|>"
    assert tok.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")
    assert tok.encode("<|endoftext|>", allowed_special="all") == [100257]


def test_a_wrong_cached_file_is_refused_and_kept(small_cl100k, error_says):
    _, cached = small_cl100k
    cached.write_bytes(cached.read_bytes()[:-10])  # a cut download
    with error_says(
        FormatError,
        "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
        "cl100k_base.tiktoken",
        re.compile(r"sha256 is \w+\.\.\., not \w+"),
    ):
        load_tokenizer("cl100k_base")
    assert cached.exists()  # tiktoken would have deleted it and gone to the network


def test_offline_without_a_cached_copy_says_what_to_download_and_where(tmp_path, monkeypatch, no_network, error_says):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(TokvecValueError) as info:
        load_tokenizer("cl100k_base")
    message = str(info.value)
    assert "\n" not in message
    assert f"fetch {CL100K_URL}" in message  # which file, from where
    assert "pass the downloaded file's path instead of the name" in message  # way 1
    assert str(tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4") in message  # way 2: cache dir + file name
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with error_says(TokvecValueError, "unset TIKTOKEN_CACHE_DIR"):
        load_tokenizer("o200k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with error_says(TokvecValueError, re.compile(r"https://\S+/vocab.bpe"), re.compile(r"https://\S+/encoder.json")):
        load_tokenizer("gpt2")


def cli(argv):
    from tokvec.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def test_cli_offline_error_is_one_line(tmp_path, monkeypatch, capsys, no_network):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for argv in (["embed", "--tokenizer", "cl100k_base", "x"], ["tokenize", "--tokenizer", "p50k_base", "x"]):
        code = cli(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and err.startswith("tokvec: error: tiktoken encoding")


def test_by_path_route_takes_pattern_and_specials_from_the_registry(tmp_path, no_network):
    small = BPETokenizer.train_from_texts(["abc abd abe " * 30], vocab_size=260, pattern="o200k")
    named = tmp_path / "o200k_base.tiktoken"
    small.save_tiktoken(named)
    tok = load_tokenizer(named)
    assert tok.pattern == "o200k" and tok.special_tokens == registry_entry("o200k_base").special_tokens
    other = tmp_path / "mine.tiktoken"
    small.save_tiktoken(other)
    assert load_tokenizer(other).special_tokens == {} and load_tokenizer(other).pattern == "cl100k"


def test_embed_cl100k_by_name_pads_to_the_context(small_cl100k, capsys):
    """The tutorial's command; with the real file the table is (100256, 64), 6,416,384 parameters."""
    small, _ = small_cl100k
    assert cli(["embed", "--tokenizer", "cl100k_base", "--d-model", "64", "--context", "16", SENTENCE]) == 0
    out = capsys.readouterr().out
    ids = small.encode(SENTENCE)
    n = len(ids)
    assert n < 16
    assert f"(vocab_size, d_model) = ({small.n_ranks}, 64): {small.n_ranks * 64:,} parameters" in out
    assert n > 3 and f"{repr(small.tokens(SENTENCE))}" in out and f"{ids}   ({n} tokens)" in out
    where = f"position {n}" if n == 15 else f"positions {n}..15"
    assert f"{n} tokens padded with {16 - n} x id 0 (no <pad> token: masked) at {where}" in out
    assert f"{ids + [0] * (16 - n)}" in out
    assert "(batch_size, seq_length, d_model) = (1, 16, 64)" in out


def test_embed_crops_to_the_context(capsys):
    assert cli(["embed", "--d-model", "8", "--context", "4", SENTENCE]) == 0
    out = capsys.readouterr().out
    assert "12 tokens cropped to the first 4 (positions 4..11 dropped)" in out
    assert "(batch_size, seq_length, d_model) = (1, 4, 8)" in out


def test_real_cl100k_when_cached(no_network):
    entry = registry_entry("cl100k_base")
    cache = tiktoken_cache_dir()
    if cache is None or not (cache / entry.files[0].cache_name).is_file():
        pytest.skip(f"no cl100k_base in tiktoken's cache ({cache}); the small-BPE tests cover the route")
    tok = load_tokenizer("cl100k_base")
    assert tok.text_vocab_size == 100256 and tok.vocab_size == 100277
    assert tok.encode(SENTENCE) == tiktoken.get_encoding("cl100k_base").encode(SENTENCE)
