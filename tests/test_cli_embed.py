"""The `tokvec` console script, run as a user runs it (a real subprocess, the installed entry point)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("tokvec")


def run(*args, cwd=None):
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tokvec"]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(cmd + list(args), capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=env,
                          timeout=120)


def test_version_and_help():
    from tokvec import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"tokvec {__version__}"
    r = run("--help")
    assert r.returncode == 0 and "embed" in r.stdout


def test_embed_default_seed_sentence_shows_every_stage():
    r = run("embed", "你好好嗎嗎", "--d-model", "64")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "['你', '好', '好', '嗎', '嗎']" in out
    assert "[6, 4, 4, 5, 5]" in out  # trained on the text itself: 好, 嗎 twice (ids 4, 5), 你 once (6)
    assert "(batch_size, seq_length) = (1, 5)" in out
    assert "(batch_size, seq_length, d_model) = (1, 5, 64)" in out
    assert "(vocab_size, d_model) = (7, 64)" in out


def test_embed_word_tokenizer_on_corpus(tmp_path):
    corpus = tmp_path / "notes.txt"
    corpus.write_text("小沈阳江西演唱会邀请了,\n今天 天气 很好。\n", encoding="utf-8")
    r = run("embed", "--corpus", str(corpus), "小沈阳江西演唱会邀请了,", "--tokenizer", "word", "--d-model", "32")
    assert r.returncode == 0, r.stderr
    assert "WordTokenizer" in r.stdout
    assert "(batch_size, seq_length, d_model) = (1, 12, 32)" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["embed", "x", "--d-model", "0"], "tokvec: error: d_model must be a positive integer, got 0"),
    (["embed", "x", "--positional", "spiral"], "tokvec: error: unknown positional scheme 'spiral'; known schemes:"),
    (["embed", "x", "--tokenizer", "bogus"], "tokvec: error: unknown tokenizer 'bogus'; use char, word"),
    (["embed", "x", "--corpus", "/nonexistent/corpus.txt"], "tokvec: error: no such file: /nonexistent/corpus.txt"),
])
def test_errors_are_one_line_without_traceback(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert r.stderr.strip().startswith(message), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_gbk_corpus_names_offset_and_encoding_fix(tmp_path):
    corpus = tmp_path / "gbk.txt"
    corpus.write_bytes("你好嗎".encode("gb18030"))
    r = run("embed", "你好", "--corpus", str(corpus))
    assert r.returncode == 2
    assert "is not valid utf-8 at byte offset 0; pass --encoding (encoding= in Python), e.g. --encoding gb18030" in r.stderr
    r = run("embed", "你好", "--corpus", str(corpus), "--encoding", "gb18030")
    assert r.returncode == 0 and "[4, 5]" in r.stdout


def test_embed_with_an_attention_level_scheme_says_nothing_is_added():
    r = run("embed", "你好", "--positional", "rope", "--heads", "4", "--d-model", "32")
    assert r.returncode == 0, r.stderr
    assert "rope (acts on attention: nothing added here)" in r.stdout
    r = run("embed", "你好", "--positional", "rope", "--heads", "3", "--d-model", "32")
    assert r.returncode == 2 and "n_heads (3) must divide d_model (32)" in r.stderr
