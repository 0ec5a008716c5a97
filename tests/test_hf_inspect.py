"""Looking inside an imported model: the run-reading commands work on `tokvec import` output unchanged."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tokvec.runs.hf import import_hf  # noqa: E402
from tokvec.tokenizers import BPETokenizer  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TEXT = "The quick brown fox jumps over the lazy dog. 小沈阳江西演唱会邀请了。\n" * 60


def cli(*args):
    from tokvec.cli import main

    try:
        main(list(args))
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf_inspect")
    tok = BPETokenizer.train_from_texts([TEXT], vocab_size=300, special_tokens=["<|endoftext|>"])
    torch.manual_seed(0)
    configs = {
        "gpt2": transformers.GPT2Config(
            vocab_size=300, bos_token_id=299, eos_token_id=299, n_embd=64, n_layer=2, n_head=4, n_positions=64
        ),
        "llama": transformers.LlamaConfig(
            vocab_size=300,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
        ),
    }
    out = {}
    for kind, config in configs.items():
        transformers.AutoModelForCausalLM.from_config(config).save_pretrained(tmp / f"hf-{kind}")
        tok.save_hf(tmp / f"hf-{kind}")
        out[kind] = import_hf(tmp / f"hf-{kind}", tmp / f"run-{kind}")
    return out


@pytest.mark.slow  # every run-reading command, the HTML report included
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_plots_neighbors_trace_report_on_imported_runs(kind, runs, tmp_path, capsys):
    run = str(runs[kind])
    if kind == "gpt2":  # the learned position table: GPT-2's wpe
        assert cli("plot", "pe", "--run", run, "--out", str(tmp_path / "pe.png")) == 0
        assert (tmp_path / "pe.png").read_bytes().startswith(PNG_MAGIC)
    assert cli("plot", "embeddings", "--run", run, "--top", "100", "--out", str(tmp_path / "emb.png")) == 0
    assert (tmp_path / "emb.png").read_bytes().startswith(PNG_MAGIC)
    assert (
        cli(
            "plot",
            "attention",
            "--run",
            run,
            "--text",
            "the lazy dog",
            "--layer",
            "1",
            "--out",
            str(tmp_path / "att.png"),
        )
        == 0
    )
    assert (tmp_path / "att.png").read_bytes().startswith(PNG_MAGIC)
    capsys.readouterr()
    assert cli("neighbors", "#260", "--run", run, "-k", "5") == 0
    printed = capsys.readouterr().out
    assert "nearest to '#260'" in printed and printed.count("\n") >= 6
    assert cli("trace", "小沈阳 fox", "--run", run) == 0
    printed = capsys.readouterr().out
    assert "token vectors  shape (1, " in printed and ", 64)" in printed
    assert cli("report", "--run", run, "--max-new-tokens", "10", "--out", str(tmp_path / "r.html")) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<html" in page.lower() and ("rope" if kind == "llama" else "learned") in page
