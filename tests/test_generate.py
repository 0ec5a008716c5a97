"""Sampling: the logits processors on hand-computed examples, seeds, the KV cache, the window, eos,
stop strings, streaming, and every bad option."""

from __future__ import annotations

import math

import pytest
import torch

from tokvec import GPT, CharTokenizer, ModelConfig, load_model
from tokvec.errors import TokvecTypeError, TokvecValueError
from tokvec.generate import (
    _split_at_stop,
    apply_repetition_penalty,
    encode_prompt,
    generate,
    next_token,
    stream,
    top_k_filter,
    top_p_filter,
)
from tokvec.model.cache import PreallocatedKVCache
from tokvec.positional import available

INF = float("-inf")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def model_for(positional="learned", vocab_size=11, context_length=16, seed=0, sharpen=True, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=vocab_size,
        context_length=context_length,
        d_model=32,
        n_layers=2,
        n_heads=2,
        positional=positional,
        **kw,
    )
    model = GPT(cfg).eval()
    if sharpen:
        with torch.no_grad():  # sharper than the 0.02 init, so greedy choices are far from ties
            model.embed.token.weight.mul_(20)
    return model


@pytest.fixture(scope="module")
def chars():
    text = "to be or not to be, that is the question.\n"
    return CharTokenizer.train([text])


# -- the logits processors, hand-computed ----------------------------------------------------
def test_top_k_worked_examples():
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0]])
    assert top_k_filter(logits, 1).tolist() == [[INF, 3.0, INF, 3.0]]  # tie with the 1st kept
    assert top_k_filter(logits, 2).tolist() == [[INF, 3.0, INF, 3.0]]
    assert top_k_filter(logits, 3).tolist() == [[INF, 3.0, 2.0, 3.0]]
    assert top_k_filter(logits, 10).tolist() == logits.tolist()  # k >= V: nothing to cut


def test_top_p_worked_examples():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])  # ranked: 0.5, 0.3, 0.15, 0.05
    logits = probs.log()

    def kept(p):
        return torch.isfinite(top_p_filter(logits, p))[0].tolist()

    assert kept(0.4) == [False, True, False, False]  # 0.5 >= 0.4 already
    assert kept(0.5) == [False, True, False, False]
    assert kept(0.8) == [False, True, False, True]  # 0.5 + 0.3 = 0.8 reaches p
    assert kept(0.81) == [False, True, True, True]
    assert kept(0.96) == [True, True, True, True]
    assert kept(1.0) == [True, True, True, True]
    kept_logits = top_p_filter(logits, 0.8)
    assert kept_logits[0, 1] == logits[0, 1] and kept_logits[0, 3] == logits[0, 3]  # survivors untouched


def test_top_p_matches_hf_rule_on_rows():
    # Hugging Face TopPLogitsWarper: sort ascending, drop where cumsum <= 1 - p, keep the top one.
    torch.manual_seed(1)
    logits = torch.randn(6, 50)
    for p in (0.1, 0.5, 0.9, 0.99):
        sorted_logits, idx = torch.sort(logits, descending=False)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum <= (1 - p)
        remove[..., -1:] = False
        hf = logits.masked_fill(remove.scatter(1, idx, remove), INF)
        assert torch.equal(torch.isfinite(hf), torch.isfinite(top_p_filter(logits, p)))


def test_repetition_penalty_worked_example():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    out = apply_repetition_penalty(logits, torch.tensor([[0, 1, 0]]), 2.0)
    assert out.tolist() == [[1.0, -2.0, 0.5]]
    assert logits.tolist() == [[2.0, -1.0, 0.5]]  # input left alone
    assert apply_repetition_penalty(logits, torch.tensor([[0]]), 1.0) is logits


def test_next_token_greedy_and_distribution():
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 1.0]])  # row 0: p = (0.25, 0.75)
    assert next_token(logits, temperature=0).tolist() == [1, 0]
    assert next_token(logits, top_k=1, generator=torch.Generator().manual_seed(0)).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([next_token(logits[:1], generator=g) for _ in range(4000)])
    share = float(draws.float().mean())
    assert abs(share - 0.75) < 3 * math.sqrt(0.75 * 0.25 / 4000)  # within 3 sigma of 0.75
    # temperature 0.5 squares the odds: 3:1 -> 9:1 -> p(1) = 0.9
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([next_token(logits[:1], temperature=0.5, generator=g) for _ in range(4000)])
    assert abs(float(draws.float().mean()) - 0.9) < 3 * math.sqrt(0.9 * 0.1 / 4000)


# -- generation ------------------------------------------------------------------------------
def test_greedy_equals_a_manual_argmax_loop():
    model = model_for()
    ids = torch.tensor([[1, 2, 3]])
    out = generate(model, ids, 6, temperature=0)
    manual = ids
    for _ in range(6):
        manual = torch.cat([manual, model(manual)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, manual)


def test_seed_reproducible_and_independent_of_global_rng():
    model = model_for(sharpen=False)  # near-uniform: every draw matters
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    a = model.generate(ids, 12, seed=7, top_k=5, top_p=0.9)
    torch.manual_seed(123)
    torch.rand(10)
    b = model.generate(ids, 12, seed=7, top_k=5, top_p=0.9)
    c = model.generate(ids, 12, seed=8, top_k=5, top_p=0.9)
    assert a.shape == (2, 15) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, :3], ids)


@pytest.mark.parametrize("scheme", available())
def test_kv_cache_greedy_equals_no_cache(scheme):
    model = model_for(scheme, context_length=32)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    with torch.no_grad():
        cached = generate(model, ids, 28, temperature=0, use_cache=True)
        uncached = generate(model, ids, 28, temperature=0, use_cache=False)
    assert cached.shape == (2, 32)
    assert torch.equal(cached, uncached)
    # sampling draws the same numbers in the same order, so it agrees too
    assert torch.equal(generate(model, ids, 28, seed=3), generate(model, ids, 28, seed=3, use_cache=False))


@pytest.mark.parametrize("scheme", available())
def test_past_the_context_window(scheme, monkeypatch):
    """A prompt longer than the window, and output past it: the model only ever sees <= 16 tokens."""
    model = model_for(scheme, context_length=16)
    prompt = torch.arange(20) % 11
    seen = []
    # the new tokens per forward, as layer 0 appends their keys to the cache (the one-token steps
    # of model/decode.py do not call the blocks or the embedding as modules, so hooks would not see them)
    update = PreallocatedKVCache.update

    def spy(self, layer, k, v):
        if layer == 0:
            seen.append(k.shape[2])
        return update(self, layer, k, v)

    monkeypatch.setattr(PreallocatedKVCache, "update", spy)
    out = generate(model, prompt, 30, temperature=0)
    monkeypatch.undo()
    assert out.shape == (50,) and torch.equal(out[:20], prompt)
    # prefill the last 16 prompt tokens; full: rebuild from the last 8, then one at a time to 16, ...
    assert seen == [16, 8] + [1] * 8 + [8] + [1] * 8 + [8] + [1] * 8 + [8, 1]
    no_cache = generate(model, prompt, 30, temperature=0, use_cache=False)
    assert torch.equal(no_cache[:21], out[:21])  # identical while both read the same window


def test_eos_stops_rows_and_pads_with_eos():
    model = model_for()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    free = generate(model, ids, 8, temperature=0)
    eos = int(free[0, 3])  # row 0's first greedy token
    out = generate(model, ids, 8, temperature=0, eos_id=eos)
    assert out[0, 3] == eos and bool((out[0, 3:] == eos).all())
    row1 = free[1, 3:].tolist()
    if eos in row1:  # row 1 ran until its own eos, then generation stopped
        assert out.shape[1] == 3 + row1.index(eos) + 1
    else:
        assert torch.equal(out[1], free[1])


def test_stream_yields_the_same_text_as_generate(chars):
    model = model_for(vocab_size=chars.vocab_size, context_length=32)
    prompt = "to be"
    ids = generate(model, torch.tensor(chars.encode(prompt)), 20, seed=5, top_k=8)
    pieces = list(stream(model, chars, prompt, 20, seed=5, top_k=8, stop_at_eos=False))
    assert len(pieces) == 20 and "".join(pieces) == chars.decode(ids[len(prompt) :].tolist())


def test_stop_strings(chars):
    model = model_for(vocab_size=chars.vocab_size, context_length=32)
    full = "".join(stream(model, chars, "to", 25, temperature=0, stop_at_eos=False))
    stop = full[6:8]
    first = full.find(stop)
    assert "".join(stream(model, chars, "to", 25, temperature=0, stop=[stop, "zzz"], stop_at_eos=False)) == full[:first]
    ids = generate(model, torch.tensor(chars.encode("to")), 25, temperature=0, stop=stop, tokenizer=chars)
    assert chars.decode(ids[2:].tolist()) == full[: first + len(stop)]  # ids end with the completing token


def test_split_at_stop_worked_examples():
    assert _split_at_stop("ab\n", ["\n\n"]) == ("ab", "\n", False)
    assert _split_at_stop("ab\n\ncd", ["\n\n"]) == ("ab", "", True)
    assert _split_at_stop("abc", ["bcd", "x"]) == ("a", "bc", False)
    assert _split_at_stop("abc", ["bcd"], final=True) == ("abc", "", False)
    assert _split_at_stop("abc", []) == ("abc", "", False)


def test_generate_restores_training_mode():
    model = model_for().train()
    model.generate(torch.tensor([[1]]), 2)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_encode_prompt_unknown_characters_and_empty(chars, error_says):
    with error_says(UserWarning, "2 prompt piece", "('Z', '沈')", warns=True):
        ids = encode_prompt(chars, "Z to 沈")
    assert ids.count(chars.unk_id) == 2
    assert encode_prompt(chars, "") == [chars.bos_id]


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, facts",
    [
        (dict(max_new_tokens=0), ("max_new_tokens", "positive integer", "got 0", "at least 1")),
        (dict(max_new_tokens=-3), ("max_new_tokens", "positive integer", "got -3")),
        (dict(max_new_tokens=2.5), ("max_new_tokens", "positive integer", "got 2.5")),
        (dict(top_p=0.0), ("top_p", "(0, 1]", "got 0.0")),
        (dict(top_p=1.5), ("top_p", "(0, 1]", "got 1.5")),
        (dict(temperature=-0.1), ("temperature", "finite", ">= 0", "got -0.1", "0 for greedy")),
        (dict(temperature=float("nan")), ("temperature", "finite", ">= 0", "got nan")),
        (dict(top_k=0), ("top_k", "positive integer or None", "got 0")),
        (dict(repetition_penalty=0), ("repetition_penalty", "finite", "> 0", "got 0")),
        (dict(eos_id=11), ("eos_id 11", "vocab_size 11")),
        (dict(stop="x"), ("stop strings", "tokenizer=")),
        (dict(stop=[""], tokenizer=object()), ("stop", "non-empty string")),
    ],
)
def test_bad_options(kwargs, facts, error_says):
    model = model_for()
    args = {"max_new_tokens": 3, **kwargs}
    with error_says(TokvecValueError, *facts):
        model.generate(torch.tensor([[1, 2]]), **args)


def test_bad_prompts(chars, error_says):
    model = model_for()
    with error_says(TokvecValueError, "prompt", "empty", "0 tokens"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)
    with error_says(TokvecValueError, "token id 12", "position 1", "vocab_size 11"):
        model.generate(torch.tensor([1, 12]), 3)
    with error_says(TokvecTypeError, "prompt", "string", "got int"):
        list(stream(model, chars, 5, 3))
    with error_says(TokvecValueError, "top_p", "(0, 1]", "got 2"):
        list(stream(model, chars, "to", 3, top_p=2))


# -- the `tokvec generate` command -----------------------------------------------------------
@pytest.fixture
def fake_run(tmp_path, monkeypatch, chars):
    """A run directory whose loading is stubbed: the CLI's own logic, without a training run."""
    model = model_for(vocab_size=chars.vocab_size, context_length=32)
    monkeypatch.setattr("tokvec.runs.checkpoint.load_run", lambda path, device="cpu": (model.to(device), chars, {}))
    (tmp_path / "run").mkdir()
    return tmp_path / "run", model


def test_cli_generate_streams_the_library_text(fake_run, chars, cli):
    run, model = fake_run
    code, out, _ = cli(
        "generate", "--run", str(run), "--prompt", "to be", "--max-new-tokens", "15", "--temperature", "0"
    )
    expected = "".join(stream(model, chars, "to be", 15, temperature=0))
    assert code == 0 and out == "to be" + expected + "\n"
    code, out2, _ = cli(
        "generate", "--run", str(run), "-p", "to", "-n", "15", "--seed", "4", "--top-k", "5", "--top-p", "0.9"
    )
    code, out3, _ = cli(
        "generate",
        "--run",
        str(run),
        "-p",
        "to",
        "-n",
        "15",
        "--seed",
        "4",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--no-cache",
    )
    assert (
        out2
        == out3
        == "to" + "".join(stream(model, chars, "to", 15, seed=4, top_k=5, top_p=0.9, temperature=0.8)) + "\n"
    )


def test_cli_generate_stop_reads_escapes(fake_run, chars, cli):
    run, model = fake_run
    full = "".join(stream(model, chars, "to", 25, temperature=0, stop_at_eos=False))
    code, out, _ = cli(
        "generate",
        "--run",
        str(run),
        "-p",
        "to",
        "-n",
        "25",
        "--temperature",
        "0",
        "--stop",
        full[6:8].replace("\n", "\\n"),
    )
    assert code == 0 and out == "to" + full[: full.find(full[6:8])] + "\n"


def test_cli_generate_interactive(fake_run, chars, cli):
    run, model = fake_run
    code, out, err = cli(
        "generate", "--run", str(run), "--interactive", "-n", "5", "--temperature", "0", stdin="to\nbe\n\n"
    )
    first = "to" + "".join(stream(model, chars, "to", 5, temperature=0))
    second = "be" + "".join(stream(model, chars, "be", 5, temperature=0))
    assert code == 0 and out == f"> {first}\n> {second}\n> "
    assert "Type a prompt" in err


def test_cli_generate_bad_input(fake_run, cli):
    run, _ = fake_run
    for flags, message in [
        (["-n", "0"], "max_new_tokens must be a positive integer, got 0"),
        (["--top-p", "1.5"], "top_p must be in (0, 1], got 1.5"),
        (["--temperature", "-1"], "temperature must be a finite number >= 0, got -1.0"),
    ]:
        code, out, err = cli("generate", "--run", str(run), *flags)
        assert code == 2 and err.startswith("tokvec: error: " + message) and err.count("\n") == 1
    code, _, err = cli("generate", "--run", str(run / "nope"), "-n", "3")
    assert code == 2 and f"no run directory at {run / 'nope'}" in err
    code, out, err = cli("generate", "--run", str(run), "-p", "to 沈", "-n", "3")
    assert code == 0 and out.startswith("to 沈")
    assert "tokvec: warning: 1 prompt piece(s) are not in the tokenizer's vocabulary ('沈')" in err


@pytest.mark.slow
def test_cli_train_then_generate_end_to_end(tmp_path, cli):
    """`tokvec train` on a small file, then `tokvec generate` on its run directory (real checkpoint)."""
    from tokvec.runs.checkpoint import load_run

    corpus = tmp_path / "small.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 30, encoding="utf-8")
    run = tmp_path / "run"
    code, _, err = cli(
        "train",
        "--corpus",
        str(corpus),
        "--tokenizer",
        "char",
        "--d-model",
        "32",
        "--layers",
        "2",
        "--heads",
        "2",
        "--context",
        "32",
        "--batch-size",
        "8",
        "--max-steps",
        "60",
        "--eval-interval",
        "30",
        "--lr",
        "1e-2",
        "--threads",
        "1",
        "--out",
        str(run),
    )
    assert code == 0, err
    code, out, _ = cli("generate", "--run", str(run), "--prompt", "to be or not", "-n", "30", "--temperature", "0")
    model, tok, _ = load_run(run)
    expected = "".join(stream(model, tok, "to be or not", 30, temperature=0))
    assert code == 0 and out == "to be or not" + expected + "\n"
    assert "that is the question" in expected  # 60 steps learn the line (near enough)
    assert load_model(run).num_parameters() == model.num_parameters()
    code, out, _ = cli("generate", "--run", str(run), "-i", "-n", "8", "--seed", "1", stdin="that\n\n")
    assert code == 0 and out.startswith("> that") and out.endswith("\n> ")


def test_cli_train_takes_the_llama_block_choices(tmp_path, cli):
    """--norm / --activation reach the model (and its saved config); a bad value is one line, exit 2."""
    corpus = tmp_path / "small.txt"
    corpus.write_text("to be or not to be, that is the question.\n" * 30, encoding="utf-8")
    base = [
        "train",
        "--corpus",
        str(corpus),
        "--d-model",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch-size",
        "4",
        "--max-steps",
        "2",
        "--eval-interval",
        "2",
        "--threads",
        "1",
    ]
    run = tmp_path / "run"
    code, _, err = cli(*base, "--positional", "rope", "--norm", "rmsnorm", "--activation", "swiglu", "--out", run)
    assert code == 0, err
    model = load_model(run)
    assert (model.config.positional, model.config.norm, model.config.activation) == ("rope", "rmsnorm", "swiglu")
    code, _, err = cli(*base, "--norm", "batchnorm", "--out", tmp_path / "bad")
    # refused before any work: the one line on stderr names the flag, the value and the choices
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("tokvec: error:")
    assert all(fact in lines[0] for fact in ("--norm 'batchnorm'", "layernorm, rmsnorm")), lines[0]
