"""Every script in examples/ runs as a user runs it (a subprocess) and prints what its docstring promises."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokvec.tokenizers import BPETokenizer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SENTENCE = "小沈阳江西演唱会邀请了,"
TESTED = {"shapes.py", "toy_classifier.py", "cl100k_embed.py"}

pytestmark = pytest.mark.slow


def run_example(name, *args, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}  # one thread: the test machine is shared
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=300,
    )


def test_every_example_is_tested_and_listed():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == TESTED
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"[`{name}`]({name})" in readme for name in scripts | {"toy_questions.csv"})


def test_shapes():
    r = run_example("shapes.py")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "ids (batch_size, seq_length) = (2, 5)"
    assert lines[1] == "table (vocab_size, d_model) = (7, 8)  values in [0, 1): True"
    assert lines[2] == "token vectors (batch_size, seq_length, d_model) = (2, 5, 8)"
    assert lines[3] == "input to the first block (batch_size, seq_length, d_model) = (2, 5, 8)"
    assert lines[4].startswith(
        "out of range -> token id 9 at position (0, 2) is out of range for vocab_size 7; ids must be in [0, 6]"
    )


def test_toy_classifier(tmp_path):
    r = run_example("toy_classifier.py", tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "vocabulary: {'你': 0, '好': 1, '嗎': 2}" in out and "你好好嗎嗎 -> [0, 1, 1, 2, 2]" in out
    assert "$ tokvec classify train --csv" in out and "train accuracy 1.000" in out
    predictions = [line.split() for line in out.splitlines()[-3:]]
    assert [(p[0], p[2]) for p in predictions] == [
        ("question", "你好好嗎嗎"),
        ("statement", "你好好"),
        ("question", "好嗎"),
    ]
    assert all(float(p[1]) > 0.5 for p in predictions)
    assert (tmp_path / "run" / "classifier.safetensors").is_file()


def test_cl100k_embed_with_a_small_bpe_of_the_same_pattern(tmp_path):
    """No cl100k file here: a BPE trained with cl100k's pattern, named like it, goes the by-path route."""
    # engine="hf": the padding below assumes SENTENCE < 16 tokens, true under HF's tie-breaking on this
    # tie-heavy corpus (rustbpe, the default engine, breaks ties by pair ids: 19 tokens)
    small = BPETokenizer.train_from_texts(
        ["江西的演唱会 请了小明 阳光 " * 10, "the cat sat on the mat. " * 20],
        vocab_size=300,
        pattern="cl100k",
        engine="hf",
    )
    path = tmp_path / "cl100k_base.tiktoken"
    small.save_tiktoken(path)
    r = run_example("cl100k_embed.py", path)
    assert r.returncode == 0, r.stderr
    ids = small.encode(SENTENCE)
    n = len(ids)
    assert f"ids: {ids} ({n} tokens)" in r.stdout
    assert "embedding table (vocab_size, d_model) = (300, 64): 19,200 parameters" in r.stdout  # 300 x 64
    assert f"context 16: {n} tokens padded with {16 - n} x id 0" in r.stdout
    assert "-> vectors (batch_size, seq_length, d_model) = (1, 16, 64)" in r.stdout
    assert "padding rows are zero: True" in r.stdout


def test_cl100k_embed_without_the_file_says_what_to_download(tmp_path):
    r = run_example("cl100k_embed.py", env={"TIKTOKEN_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "fetch https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken" in r.stderr
    assert str(tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4") in r.stderr
