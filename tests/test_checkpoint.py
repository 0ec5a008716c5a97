"""Run directories: save -> load round trips, crash safety, corruption -> clear errors, no pickle."""

import json
import os

import pytest
import torch

from tokvec import load_model
from tokvec.errors import FormatError
from tokvec.model import GPT, ModelConfig
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.checkpoint import CheckpointError, load_run, save_run
from tokvec.tokenizers import CharTokenizer

TEXT = "to be or not to be, that is the question. "


def _setup(positional="learned", seed=0):
    tok = CharTokenizer.train([TEXT])
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=tok.vocab_size, context_length=16, d_model=32, n_layers=2, n_heads=2, positional=positional
    )
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.tensor([tok.encode(TEXT[:16])])
    for _ in range(2):  # give the optimizer some state
        opt.zero_grad()
        model(x, x)[1].backward()
        opt.step()
    return tok, cfg, model, opt, x


def _save(tmp_path, model, tok, cfg, opt, step):
    return save_run(
        tmp_path,
        model=model,
        tokenizer=tok,
        model_config=cfg.to_dict(),
        train_config={"lr": 1e-2},
        step=step,
        optimizer=opt,
    )


@pytest.mark.parametrize("positional", ["learned", "sinusoidal", "none"])
def test_save_load_identical_logits(tmp_path, positional):
    tok, cfg, model, opt, x = _setup(positional)
    _save(tmp_path, model, tok, cfg, opt, step=2)
    loaded, tok2, config = load_run(tmp_path)
    model.eval()
    assert torch.equal(model(x)[0], loaded(x)[0])
    assert tok2.fingerprint() == tok.fingerprint() and config["step"] == 2
    assert config["format"] == "tokvec.run" and config["version"] == 1
    assert config["tokenizer"] == {"kind": "char", "fingerprint": tok.fingerprint()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "tokenizer.json",
    ]
    # tied embedding: the LM head shares the table again after loading
    assert load_model(tmp_path).config == cfg


def test_optimizer_round_trip_without_pickle(tmp_path):
    tok, cfg, model, opt, x = _setup()
    _save(tmp_path, model, tok, cfg, opt, step=2)
    raw = (tmp_path / "optimizer.safetensors").read_bytes()
    assert not raw.startswith(b"\x80") and b"PK" not in raw[:4]  # neither pickle nor torch.save zip
    fresh = torch.optim.AdamW(GPT(cfg).parameters(), lr=1e-2)
    ckpt.load_optimizer(tmp_path, fresh)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"]
    assert list(a["param_groups"][0]["betas"]) == list(b["param_groups"][0]["betas"])
    for pid, state in a["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["state"][pid][key]), (pid, key)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_safetensors_is_a_clear_error_and_nothing_is_overwritten(tmp_path, damage):
    tok, cfg, model, opt, x = _setup()
    _save(tmp_path, model, tok, cfg, opt, step=2)
    path = tmp_path / "model.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-10] ^= 0xFF  # one flipped byte inside a weight
    path.write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    word = "truncated" if damage == "truncate" else "corrupted"
    with pytest.raises(CheckpointError, match=rf"model.safetensors is {word} \(\d+ bytes, sha256 does not match"):
        load_run(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_garbage_safetensors_with_matching_hash_is_a_clear_error(tmp_path):
    tok, cfg, model, opt, x = _setup()
    _save(tmp_path, model, tok, cfg, opt, step=2)
    garbage = b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"
    (tmp_path / "model.safetensors").write_bytes(garbage)
    config = json.loads((tmp_path / "config.json").read_text())
    config["files"]["model.safetensors"] = {"sha256": ckpt._sha256(garbage), "bytes": len(garbage)}
    (tmp_path / "config.json").write_text(json.dumps(ckpt.seal_config(config)))
    with pytest.raises(CheckpointError, match="model.safetensors is not a safetensors file"):
        load_run(tmp_path)


def test_missing_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no run directory at"):
        load_run(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint \\(no config.json\\)"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(CheckpointError, match="not a tokvec run config"):
        load_run(tmp_path)


def test_crash_before_commit_keeps_previous_checkpoint(tmp_path, monkeypatch):
    tok, cfg, model, opt, x = _setup()
    _save(tmp_path, model, tok, cfg, opt, step=1)
    model.eval()
    old_logits = model(x)[0]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)

    def crash(*a, **k):
        raise OSError("simulated crash before config.json is renamed")

    monkeypatch.setattr(ckpt, "write_json", crash)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, model, tok, cfg, opt, step=2)
    monkeypatch.undo()
    loaded, _, config = load_run(tmp_path)
    assert config["step"] == 1 and torch.equal(loaded(x)[0], old_logits)


def test_crash_after_commit_rolls_forward_to_pending_files(tmp_path, monkeypatch):
    tok, cfg, model, opt, x = _setup()
    _save(tmp_path, model, tok, cfg, opt, step=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    model.eval()
    new_logits = model(x)[0]

    real_replace = os.replace

    def replace(src, dst):
        # atomic_open's own renames (temp -> .pending, temp -> config.json) go through; the renames of
        # the pending files over the final ones "crash"
        if str(dst).endswith("config.json") or os.path.basename(dst).startswith("."):
            return real_replace(src, dst)
        raise OSError("simulated crash after the commit, before the renames")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, model, tok, cfg, opt, step=2)
    monkeypatch.undo()
    assert (tmp_path / ".model.safetensors.pending").exists()
    loaded, _, config = load_run(tmp_path)
    assert config["step"] == 2 and torch.equal(loaded(x)[0], new_logits)
    # the next save completes the renames
    _save(tmp_path, model, tok, cfg, opt, step=3)
    assert not (tmp_path / ".model.safetensors.pending").exists()
    assert load_run(tmp_path)[2]["step"] == 3


def test_replaced_tokenizer_is_detected(tmp_path):
    tok, cfg, model, opt, x = _setup()
    _save(tmp_path, model, tok, cfg, opt, step=1)
    CharTokenizer.train(["something else entirely"]).save(tmp_path / "tokenizer.json")
    with pytest.raises(CheckpointError, match="tokenizer file was replaced"):
        load_run(tmp_path)


def test_metrics_strict_raises_where_resume_skips(tmp_path):
    assert ckpt.read_metrics(tmp_path, strict=False) == []  # no log yet: a resume starts a new one
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        ckpt.read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "split": "val", "loss": 2.0}\ngarbage\n{"step": 2, "split": "val", "loss": 1.5}\n',
        encoding="utf-8",
    )
    assert [r["step"] for r in ckpt.read_metrics(tmp_path, strict=False)] == [1, 2]
    with pytest.raises(FormatError, match=r"line 2 is not valid JSON.*'garbage'"):
        ckpt.read_metrics(tmp_path)


def test_metrics_skip_a_torn_last_line(tmp_path):
    ckpt.write_metrics(tmp_path, [{"step": 1, "split": "val", "loss": 2.0}])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "spl')
    assert ckpt.read_metrics(tmp_path) == [{"step": 1, "split": "val", "loss": 2.0}]
