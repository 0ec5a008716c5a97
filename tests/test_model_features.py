"""The model features real checkpoints need: gelu_new, grouped-query attention (n_kv_heads), q/k/v-only
biases, norm_eps. Each is pinned to a formula or to the plain path it must equal."""

from __future__ import annotations

import math

import pytest
import torch

from tokvec.errors import TokvecValueError
from tokvec.model import GPT, ModelConfig
from tokvec.model.fast.decode import Decoder


def test_gelu_new_is_the_tanh_formula():
    # GPT-2's gelu_new (Hendrycks & Gimpel 2016, eq. 2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    from tokvec.model.block import gelu

    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    want = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(gelu(x, "gelu_new"), want, atol=1e-12, rtol=0)
    assert float((gelu(x, "gelu") - want).abs().max()) > 1e-5  # the erf GELU is a different function


def _cfg(**kw):
    base = dict(
        vocab_size=50,
        d_model=32,
        n_layers=2,
        n_heads=4,
        context_length=32,
        positional="rope",
        norm="rmsnorm",
        activation="swiglu",
        bias=False,
    )
    return ModelConfig(**{**base, **kw})


def test_gqa_equals_mha_with_repeated_kv_heads():
    """n_kv_heads=2 of 4: the same model as plain attention whose k/v heads 2j, 2j+1 are copies of kv head j."""
    torch.manual_seed(0)
    gqa = GPT(_cfg(n_kv_heads=2)).eval()
    mha = GPT(_cfg()).eval()
    state = gqa.state_dict()
    hd, d = 8, 32
    for i in range(2):
        w = state[f"blocks.{i}.attn.qkv.weight"]  # (d + 2 * 2 hd, d)
        q, k, v = w[:d], w[d : d + 2 * hd], w[d + 2 * hd :]
        rep = lambda t: t.view(2, hd, d).repeat_interleave(2, dim=0).reshape(4 * hd, d)  # noqa: E731
        state[f"blocks.{i}.attn.qkv.weight"] = torch.cat([q, rep(k), rep(v)])
    mha.load_state_dict(state)
    ids = torch.randint(0, 50, (2, 20))
    torch.testing.assert_close(gqa(ids)[0], mha(ids)[0], atol=1e-5, rtol=0)
    assert gqa.blocks[0].attn.qkv.weight.shape == (32 + 2 * 16, 32)


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_kv_heads=2),
        dict(n_kv_heads=1, qkv_bias=True),
        dict(positional="learned", norm="layernorm", activation="gelu_new", bias=True),
    ],
)
def test_cache_and_decode_path_equal_the_full_forward(kw):
    """The KV cache stores n_kv_heads heads; the one-token decode path handles GQA, qkv biases, gelu_new."""
    torch.manual_seed(1)
    model = GPT(_cfg(**kw)).eval()
    ids = torch.randint(0, 50, (2, 12))
    full = model(ids)[0]  # (2, 12, V)
    with torch.no_grad():
        cache = model.new_cache()
        model(ids[:, :6], cache=cache)
        k, _ = cache.layers[0]
        assert k.shape == (2, model.config.kv_heads, 6, 8)
        dec = Decoder(model)
        for t in range(6, 12):
            logits = dec.step(ids[:, t : t + 1], cache)
            torch.testing.assert_close(logits, full[:, t], atol=1e-5, rtol=0)


def test_qkv_bias_only_on_qkv():
    model = GPT(_cfg(qkv_bias=True))
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    assert attn.qkv.bias is not None and attn.proj.bias is None and mlp.fc.bias is None


def test_norm_eps_reaches_the_norms():
    model = GPT(_cfg(norm_eps=1e-6))
    assert model.norm.eps == 1e-6 and model.blocks[1].norm2.eps == 1e-6
    x = torch.full((1, 32), 1e-4)  # RMS 1e-4: eps 1e-6 vs 1e-5 changes the output visibly
    torch.testing.assert_close(model.norm(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))


def test_bad_new_fields_are_named(error_says):
    with error_says(TokvecValueError, "n_kv_heads (3)", "n_heads (4)"):
        _cfg(n_kv_heads=3)
    with error_says(TokvecValueError, "norm_eps", "(0, 1)", "-1"):
        _cfg(norm_eps=-1)
    with error_says(TokvecValueError, "qkv_bias", "true, false or null", "'yes'"):
        _cfg(qkv_bias="yes")


def test_old_run_configs_still_load():
    """Runs saved before these fields existed lack them: the defaults are the old behaviour."""
    old = {k: v for k, v in _cfg().to_dict().items() if k not in ("n_kv_heads", "qkv_bias", "norm_eps")}
    cfg = ModelConfig.from_dict(old)
    assert cfg.kv_heads == cfg.n_heads and cfg.norm_eps == 1e-5 and cfg.qkv_bias is None


@pytest.mark.parametrize("positional", ["learned", "rope", "relative"])
def test_set_dropout_equals_a_model_built_with_that_dropout(positional, error_says):
    # a model whose dropout is changed in place drops exactly what a model built with it drops:
    # the same weights, the same seed, in training mode, give the same logits
    config = dict(vocab_size=50, context_length=16, d_model=32, n_layers=2, n_heads=4, positional=positional)
    torch.manual_seed(0)
    changed = GPT(ModelConfig(**config, dropout=0.0))
    built = GPT(ModelConfig(**config, dropout=0.25))
    built.load_state_dict(changed.state_dict())
    assert changed.set_dropout(0.25) is changed and changed.config.dropout == 0.25
    ids = torch.randint(0, 50, (3, 16))
    changed.train(), built.train()
    torch.manual_seed(1)
    a = changed(ids)[0]
    torch.manual_seed(1)
    b = built(ids)[0]
    torch.manual_seed(1)
    assert torch.equal(a, b) and not torch.equal(a, changed.eval()(ids)[0])  # dropout did act
    with error_says(TokvecValueError, "dropout", "1.5"):
        changed.set_dropout(1.5)
    assert changed.config.dropout == 0.25  # a refused value changes nothing
