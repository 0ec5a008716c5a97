"""The `tokvec` console script, run as a user runs it (a real subprocess, the installed entry point)."""

import pytest

pytestmark = pytest.mark.slow  # every test here starts the console script


def test_version_and_help(cli):
    from tokvec import __version__

    r = cli("--version", subprocess=True)
    assert r.code == 0 and r.out.strip() == f"tokvec {__version__}"
    r = cli("--help", subprocess=True)
    assert r.code == 0 and "embed" in r.out


def test_embed_default_seed_sentence_shows_every_stage(cli):
    r = cli("embed", "你好好嗎嗎", "--d-model", "64", subprocess=True)
    assert r.code == 0, r.err
    out = r.out
    assert "['你', '好', '好', '嗎', '嗎']" in out
    assert "[6, 4, 4, 5, 5]" in out  # trained on the text itself: 好, 嗎 twice (ids 4, 5), 你 once (6)
    assert "(batch_size, seq_length) = (1, 5)" in out
    assert "(batch_size, seq_length, d_model) = (1, 5, 64)" in out
    assert "(vocab_size, d_model) = (7, 64)" in out


def test_embed_word_tokenizer_on_corpus(tmp_path, cli):
    corpus = tmp_path / "notes.txt"
    corpus.write_text("小沈阳江西演唱会邀请了,\n今天 天气 很好。\n", encoding="utf-8")
    r = cli(
        "embed",
        "--corpus",
        str(corpus),
        "小沈阳江西演唱会邀请了,",
        "--tokenizer",
        "word",
        "--d-model",
        "32",
        subprocess=True,
    )
    assert r.code == 0, r.err
    assert "WordTokenizer" in r.out
    assert "(batch_size, seq_length, d_model) = (1, 12, 32)" in r.out


@pytest.mark.parametrize(
    "args, message",
    [
        (["embed", "x", "--d-model", "0"], "tokvec: error: d_model must be a positive integer, got 0"),
        (["embed", "x", "--positional", "spiral"], "tokvec: error: unknown positional scheme 'spiral'; known schemes:"),
        (["embed", "x", "--tokenizer", "bogus"], "tokvec: error: unknown tokenizer 'bogus'; use char, word"),
        (["embed", "x", "--corpus", "/nonexistent/corpus.txt"], "tokvec: error: no such file: /nonexistent/corpus.txt"),
    ],
)
def test_errors_are_one_line_without_traceback(args, message, cli):
    r = cli(*args, subprocess=True)
    assert r.code == 2
    assert r.err.strip().startswith(message), r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def test_gbk_corpus_names_offset_and_encoding_fix(tmp_path, cli):
    corpus = tmp_path / "gbk.txt"
    corpus.write_bytes("你好嗎".encode("gb18030"))
    r = cli("embed", "你好", "--corpus", str(corpus), subprocess=True)
    assert r.code == 2
    assert (
        "is not valid utf-8 at byte offset 0; pass --encoding (encoding= in Python), e.g. --encoding gb18030" in r.err
    )
    r = cli("embed", "你好", "--corpus", str(corpus), "--encoding", "gb18030", subprocess=True)
    assert r.code == 0 and "[4, 5]" in r.out


def test_embed_with_an_attention_level_scheme_says_nothing_is_added(cli):
    r = cli("embed", "你好", "--positional", "rope", "--heads", "4", "--d-model", "32", subprocess=True)
    assert r.code == 0, r.err
    assert "rope (acts on attention: nothing added here)" in r.out
    r = cli("embed", "你好", "--positional", "rope", "--heads", "3", "--d-model", "32", subprocess=True)
    assert r.code == 2 and "n_heads (3) must divide d_model (32)" in r.err
