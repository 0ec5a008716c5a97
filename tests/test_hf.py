"""Hugging Face round trips: tiny random GPT-2 / Llama (GQA) / Qwen2 models built with transformers,
saved, imported, run, fine-tuned, exported and loaded back by transformers. Nothing is downloaded."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")

from tokvec.errors import TokvecError  # noqa: E402
from tokvec.model import GPT, ModelConfig  # noqa: E402
from tokvec.model.hf import HFModelError  # noqa: E402
from tokvec.runs import checkpoint as ckpt  # noqa: E402
from tokvec.runs.hf import export_hf, import_hf  # noqa: E402
from tokvec.runs.pretrained import init_source, load_hf  # noqa: E402
from tokvec.runs.train import TrainConfig, train  # noqa: E402
from tokvec.tokenizers import BPETokenizer  # noqa: E402

TEXT = (
    "The quick brown fox jumps over the lazy dog. 小沈阳江西演唱会邀请了。 It's 2024!\n" * 40
    + "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.\n" * 40
)


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train_from_texts([TEXT], vocab_size=320, special_tokens=["<|endoftext|>"])


def _hf_config(kind: str, vocab: int):
    common = dict(vocab_size=vocab, bos_token_id=vocab - 1, eos_token_id=vocab - 1)
    if kind == "gpt2":
        return transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=128, **common)
    if kind.startswith("llama"):
        scaling = {
            "llama-linear": {"rope_type": "linear", "factor": 2.0},
            "llama-yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32},
        }
        return transformers.LlamaConfig(
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            rms_norm_eps=1e-6,
            rope_theta=500.0,
            tie_word_embeddings=False,
            rope_scaling=scaling.get(kind),
            **common,
        )
    return transformers.Qwen2Config(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=1000.0,
        tie_word_embeddings=False,
        **common,
    )


def _save_hf(kind: str, bpe: BPETokenizer, path, *, shard: str | None = None):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(_hf_config(kind, bpe.vocab_size)).float().eval()
    with torch.no_grad():  # random biases and norm gains, so that every mapped tensor matters
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_" in name:
                p.normal_(0.0 if name.endswith("bias") else 1.0, 0.1)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(path, **kwargs)
    bpe.save_hf(path)
    return model


def _ids(bpe, n=48):
    return torch.tensor([bpe.encode(TEXT[:400])[:n]])


@pytest.mark.parametrize(
    "kind,shard",
    [
        ("gpt2", None),
        ("gpt2", "100KB"),
        ("llama", "100KB"),
        ("llama", None),
        ("llama-linear", None),
        ("llama-yarn", None),
        ("qwen2", None),
    ],
)
def test_import_matches_transformers(kind, shard, bpe, tmp_path):
    hf_model = _save_hf(kind, bpe, tmp_path / "hf", shard=shard)
    if shard:
        assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    model = GPT.from_pretrained(tmp_path / "hf")
    ids = _ids(bpe)
    with torch.no_grad():
        want = hf_model(ids).logits
        got, _ = model(ids)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    if kind == "llama":
        assert model.config.kv_heads == 2 and model.config.n_heads == 4 and not model.config.tie_embeddings
    if kind == "qwen2":
        assert model.blocks[0].attn.qkv.bias is not None and model.blocks[0].attn.proj.bias is None


@pytest.mark.parametrize("kind", ["gpt2", "llama", "qwen2"])
def test_greedy_with_and_without_cache(kind, bpe, tmp_path):
    hf_model = _save_hf(kind, bpe, tmp_path / "hf")
    model = GPT.from_pretrained(tmp_path / "hf")
    prompt = _ids(bpe, 8)
    cached = model.generate(prompt, 30, temperature=0.0, use_cache=True)
    plain = model.generate(prompt, 30, temperature=0.0, use_cache=False)
    assert torch.equal(cached, plain)
    want = hf_model.generate(
        prompt,
        max_new_tokens=30,
        min_new_tokens=30,
        do_sample=False,
        attention_mask=torch.ones_like(prompt),
        pad_token_id=0,
    )
    assert torch.equal(cached, want)


@pytest.mark.slow  # real training steps, then transformers loads the export
@pytest.mark.parametrize("kind", ["gpt2", "llama", "qwen2"])
def test_round_trip_finetune_export(kind, bpe, tmp_path):
    _save_hf(kind, bpe, tmp_path / "hf")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    config = TrainConfig.finetune(
        str(tmp_path / "hf"),
        corpus=str(corpus),
        out=str(tmp_path / "ft"),
        max_steps=6,
        lr=3e-3,
        warmup_steps=0,
        batch_size=4,
        eval_interval=6,
        eval_batches=2,
        seed=0,
    )
    result = train(config)
    assert result.losses[-1] < result.losses[0]
    assert result.model.config.to_dict() == GPT.from_pretrained(tmp_path / "hf").config.to_dict()
    # resume continues as any run
    more = train(TrainConfig.for_resume(str(tmp_path / "ft"), max_steps=8))
    assert more.start_step == 6 and more.step == 8

    export_hf(tmp_path / "ft", tmp_path / "out")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").float().eval()
    model, tok, _ = ckpt.load_run(tmp_path / "ft")
    ids = _ids(bpe)
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reloaded(ids).logits, atol=1e-4, rtol=0)
    # transformers 5 swaps in Qwen's own pre-tokenizer and NFC for model_type qwen2 (docs/hf.md);
    # the tokenizer.json as written is what PreTrainedTokenizerFast loads
    loader = transformers.PreTrainedTokenizerFast if kind == "qwen2" else transformers.AutoTokenizer
    auto = loader.from_pretrained(tmp_path / "out")
    assert auto(TEXT[:500])["input_ids"] == tok.encode(TEXT[:500])
    gen = json.loads((tmp_path / "out" / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_id == bpe.special_tokens["<|endoftext|>"]


def test_import_run_dir_works_with_generate(bpe, tmp_path):
    _save_hf("llama", bpe, tmp_path / "hf")
    run = import_hf(tmp_path / "hf", tmp_path / "run")
    model, tok, config = ckpt.load_run(run)
    assert config["step"] == 0 and config["source"]["model_type"] == "llama"
    assert tok.fingerprint() == bpe.fingerprint()
    with pytest.raises(TokvecError, match="already holds"):
        import_hf(tmp_path / "hf", tmp_path / "run")


def test_export_interleaved_rope_run_to_llama(bpe, tmp_path):
    """A run trained in tokvec's default (interleaved) rope layout exports with q/k rows permuted."""
    cfg = ModelConfig(
        vocab_size=bpe.vocab_size,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        context_length=64,
        positional="rope",
        norm="rmsnorm",
        activation="swiglu",
        bias=False,
        tie_embeddings=True,
    )
    torch.manual_seed(1)
    model = GPT(cfg).eval()
    ckpt.save_run(tmp_path / "run", model=model, tokenizer=bpe, model_config=cfg.to_dict(), train_config={}, step=0)
    export_hf(tmp_path / "run", tmp_path / "out")
    hf_cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert hf_cfg["architectures"] == ["LlamaForCausalLM"] and hf_cfg["num_key_value_heads"] == 2
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").float().eval()
    ids = _ids(bpe)
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], reloaded(ids).logits, atol=1e-4, rtol=0)


# -- bad inputs: each error names the offending thing ---------------------------------------------------
def test_pickle_only_directory_refused(bpe, tmp_path):
    _save_hf("gpt2", bpe, tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").rename(tmp_path / "hf" / "pytorch_model.bin")
    with pytest.raises(HFModelError, match=r"pytorch_model\.bin.*never unpickles.*save_pretrained"):
        GPT.from_pretrained(tmp_path / "hf")


def test_unsupported_model_type_and_fields(bpe, tmp_path):
    _save_hf("llama", bpe, tmp_path / "hf")
    path = tmp_path / "hf" / "config.json"
    cfg = json.loads(path.read_text())
    path.write_text(json.dumps({**cfg, "model_type": "mixtral"}))
    with pytest.raises(HFModelError, match=r"'mixtral'.*gpt2, llama, mistral, qwen2"):
        GPT.from_pretrained(tmp_path / "hf")
    path.write_text(json.dumps({**cfg, "model_type": "mistral", "sliding_window": 64}))
    with pytest.raises(HFModelError, match=r"sliding_window 64"):
        GPT.from_pretrained(tmp_path / "hf")
    path.write_text(
        json.dumps(
            {**cfg, "rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 5e5}, "rope_scaling": None}
        )
    )
    with pytest.raises(HFModelError, match=r"rope type 'llama3'.*default, linear, yarn"):
        GPT.from_pretrained(tmp_path / "hf")


def test_wrong_shape_and_missing_tensor_named(bpe, tmp_path):
    from safetensors.torch import load_file, save_file

    _save_hf("gpt2", bpe, tmp_path / "hf")
    path = tmp_path / "hf" / "model.safetensors"
    tensors = load_file(path)
    bad = dict(tensors)
    bad["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(64, 100)
    save_file(bad, path, metadata={"format": "pt"})
    with pytest.raises(HFModelError, match=r"'transformer\.h\.1\.mlp\.c_fc\.weight'.*\(64, 100\).*\(64, 256\)"):
        GPT.from_pretrained(tmp_path / "hf")
    del bad["transformer.h.1.mlp.c_fc.weight"]
    save_file(bad, path, metadata={"format": "pt"})
    with pytest.raises(HFModelError, match=r"'transformer\.h\.1\.mlp\.c_fc\.weight' is missing"):
        GPT.from_pretrained(tmp_path / "hf")


def test_unreadable_tokenizer_says_use_tokenizer_flag(bpe, tmp_path):
    _save_hf("gpt2", bpe, tmp_path / "hf")
    tj = tmp_path / "hf" / "tokenizer.json"
    data = json.loads(tj.read_text())
    data["model"] = {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "a", "continuing_subword_prefix": "##"}
    tj.write_text(json.dumps(data))
    with pytest.raises(HFModelError, match=r"tokenizer\.json.*WordPiece.*--tokenizer"):
        load_hf(tmp_path / "hf")
    bpe.save(tmp_path / "tok.json")  # the way out: the weights with another tokenizer
    model, tok, _ = load_hf(tmp_path / "hf", tokenizer=tmp_path / "tok.json")
    assert tok.vocab_size == bpe.vocab_size


def test_init_source_changes_dropout_in_place_and_keeps_the_weights(bpe, tmp_path):
    _save_hf("gpt2", bpe, tmp_path / "hf")
    plain, _, _ = load_hf(tmp_path / "hf")
    model, _ = init_source(tmp_path / "hf", dropout=0.2)
    assert model.config.dropout == 0.2
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.2}
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.state_dict().values()))


def test_finetune_refuses_architecture_flags(bpe, tmp_path):
    with pytest.raises(TokvecError, match=r"d_model=128.*n_layers=3.*only dropout"):
        TrainConfig.finetune(str(tmp_path), d_model=128, n_layers=3).validate()


def test_export_refuses_other_architectures(bpe, tmp_path):
    cfg = ModelConfig(
        vocab_size=bpe.vocab_size, d_model=32, n_layers=1, n_heads=2, context_length=16, positional="alibi"
    )
    ckpt.save_run(tmp_path / "run", model=GPT(cfg), tokenizer=bpe, model_config=cfg.to_dict(), train_config={}, step=0)
    with pytest.raises(TokvecError, match=r"positional 'alibi'.*What exports.*learned.*rope"):
        export_hf(tmp_path / "run", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_or_garbage_safetensors_named(bpe, tmp_path):
    _save_hf("gpt2", bpe, tmp_path / "hf")
    path = tmp_path / "hf" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(HFModelError, match=r"model\.safetensors: tensor '.*' .* truncated or corrupted"):
        GPT.from_pretrained(tmp_path / "hf")
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(HFModelError, match=r"model\.safetensors is not a safetensors file"):
        GPT.from_pretrained(tmp_path / "hf")


def test_empty_model_has_working_tables_and_tied_head():
    cfg = ModelConfig(vocab_size=40, d_model=32, n_layers=1, n_heads=4, context_length=16, positional="rope")
    model = GPT.empty(cfg)
    assert model.lm_head.weight is model.embed.token.weight
    assert model.blocks[0].attn.positional is model.embed.positional
    torch.testing.assert_close(model.embed.positional._cos, GPT(cfg).embed.positional._cos)


@pytest.mark.parametrize("kind", ["llama-linear", "llama-yarn"])
def test_rope_scaling_survives_export(kind, bpe, tmp_path):
    hf_model = _save_hf(kind, bpe, tmp_path / "hf")
    import_hf(tmp_path / "hf", tmp_path / "run")
    export_hf(tmp_path / "run", tmp_path / "out")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").float().eval()
    ids = _ids(bpe)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, hf_model(ids).logits, atol=1e-4, rtol=0)
