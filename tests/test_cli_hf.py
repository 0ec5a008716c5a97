"""`tokvec import`, `train --init-from`, `export`, `tokenizer export` as a user types them."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tokvec.tokenizers import BPETokenizer, CharTokenizer  # noqa: E402

TEXT = "The quick brown fox jumps over the lazy dog. 小沈阳江西演唱会邀请了。\n" * 60


def cli(*args):
    from tokvec.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code
    return 0


@pytest.mark.slow  # real training steps, then transformers loads the export
def test_import_finetune_export_from_the_command_line(tmp_path, capsys):
    tok = BPETokenizer.train_from_texts([TEXT], vocab_size=300, special_tokens=["<|endoftext|>"])
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=300, n_embd=32, n_layer=1, n_head=2, n_positions=32, bos_token_id=299, eos_token_id=299
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "hf")
    tok.save_hf(tmp_path / "hf")
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")

    assert cli("import", tmp_path / "hf", "--out", tmp_path / "run") == 0
    assert "1 layers, d_model 32, learned, vocab 300" in capsys.readouterr().out
    assert (
        cli(
            "train",
            "--init-from",
            tmp_path / "run",
            "--corpus",
            tmp_path / "c.txt",
            "--out",
            tmp_path / "ft",
            "--max-steps",
            "3",
            "--eval-interval",
            "3",
            "--batch-size",
            "2",
        )
        == 0
    )
    saved = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert saved["train"]["lr"] == 3e-5 and saved["train"]["init_from"] == str(tmp_path / "run")
    # fine-tuning again into the same run directory is refused, and --force replaces it
    again = (
        "train",
        "--init-from",
        tmp_path / "run",
        "--corpus",
        tmp_path / "c.txt",
        "--out",
        tmp_path / "ft",
        "--max-steps",
        "3",
        "--eval-interval",
        "3",
        "--batch-size",
        "2",
    )
    assert cli(*again) == 2 and "--force" in capsys.readouterr().err
    assert cli(*again, "--force") == 0
    assert cli("export", "--run", tmp_path / "ft", "--format", "hf", "--out", tmp_path / "out") == 0
    assert "GPT2LMHeadModel" in capsys.readouterr().out
    assert transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.n_embd == 32
    # a second export into the same directory needs --force
    assert cli("export", "--run", tmp_path / "ft", "--out", tmp_path / "out") == 2
    assert "--force" in capsys.readouterr().err
    assert cli("export", "--run", tmp_path / "ft", "--out", tmp_path / "out", "--force") == 0


def test_refusals_are_one_line_exit_2(tmp_path, capsys):
    assert cli("train", "--init-from", tmp_path, "--d-model", "64", "--out", tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert err.startswith("tokvec: error:") and "--d-model=64" in err and err.count("\n") == 1
    (tmp_path / "hf").mkdir()
    transformers.GPT2Config(vocab_size=300, n_embd=32, n_layer=1, n_head=2).save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "pytorch_model.bin").write_bytes(b"not read")
    assert cli("import", tmp_path / "hf", "--out", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert "pytorch_model.bin" in err and "never unpickles" in err and "Traceback" not in err


def test_tokenizer_export_formats(tmp_path, capsys):
    bpe = BPETokenizer.train_from_texts([TEXT], vocab_size=300)
    bpe.save(tmp_path / "bpe.json")
    assert cli("tokenizer", "export", tmp_path / "bpe.json", "--format", "hf", "--out", tmp_path / "hf") == 0
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert auto(TEXT[:200], add_special_tokens=False)["input_ids"] == bpe.encode(TEXT[:200])
    assert (
        cli("tokenizer", "export", tmp_path / "bpe.json", "--format", "tiktoken", "--out", tmp_path / "b.tiktoken") == 0
    )
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    enc = tiktoken.Encoding(
        "t", pat_str=bpe.pat_str, mergeable_ranks=load_tiktoken_bpe(str(tmp_path / "b.tiktoken")), special_tokens={}
    )
    assert enc.encode(TEXT[:200]) == bpe.encode(TEXT[:200])
    CharTokenizer.train([TEXT]).save(tmp_path / "char.json")
    assert cli("tokenizer", "export", tmp_path / "char.json", "--format", "tiktoken", "--out", tmp_path / "c") == 2
    assert "no tiktoken form" in capsys.readouterr().err
