"""CausalSelfAttention with every positional scheme: KV cache, SDPA use, explicit weights, gradients."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from tokvec.errors import TokvecValueError
from tokvec.model import CausalSelfAttention, KVCache
from tokvec.positional import build

SCHEMES = ["none", "rope", "alibi", "relative", "t5", "xl"]
D, H = 32, 4


def attention(name: str, **options) -> CausalSelfAttention:
    torch.manual_seed(0)
    pos = build(name, d_model=D, n_heads=H, head_dim=D // H, max_len=64, **options)
    with torch.no_grad():  # learned position parameters start small or at zero: make them matter
        for p in pos.parameters():
            p.normal_(0.0, 0.5)
    return CausalSelfAttention(D, H, positional=pos).eval()


@pytest.mark.parametrize("name", SCHEMES + ["relative-keys"])
def test_kv_cache_gives_the_same_outputs_as_one_full_pass(name):
    att = attention("relative", values=False) if name == "relative-keys" else attention(name)
    x = torch.randn(2, 13, D)
    with torch.no_grad():
        full = att(x)
        cache = KVCache(1)
        # prefill in two chunks, then one token at a time
        steps = [att(x[:, :5], cache=cache), att(x[:, 5:9], cache=cache)]
        steps += [att(x[:, i:i + 1], cache=cache) for i in range(9, 13)]
    assert cache.length == 13
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", SCHEMES)
def test_explicit_weights_path_equals_the_fused_path(name):
    att = attention(name)
    x = torch.randn(2, 9, D)
    with torch.no_grad():
        y = att(x)
        y_explicit, weights = att(x, need_weights=True)
    torch.testing.assert_close(y_explicit, y, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, H, 9, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, H, 9))
    assert torch.all(weights.triu(diagonal=1) == 0)  # causal


@pytest.mark.parametrize("name,fused", [("none", True), ("rope", True), ("alibi", True), ("t5", True),
                                        ("xl", True), ("relative-keys", True), ("relative", False)])
def test_schemes_stay_on_scaled_dot_product_attention(name, fused):
    att = attention("relative", values=False) if name == "relative-keys" else attention(name)
    with mock.patch("tokvec.model.attention.F.scaled_dot_product_attention",
                    wraps=F.scaled_dot_product_attention) as sdpa, torch.no_grad():
        att(torch.randn(1, 6, D))
    assert sdpa.called == fused  # only Shaw relative *values* need the weights written out


def test_shaw_attention_equals_a_direct_loop_implementation():
    """Shaw et al. 2018 eqs. 3-5 written as loops over batch, head, query, key."""
    k_clip = 2
    att = attention("relative", max_relative_position=k_clip)
    pos = att.positional
    x = torch.randn(1, 6, D)
    with torch.no_grad():
        y, weights = att(x, need_weights=True)
        q, k, v = att.qkv(x).split(D, dim=2)
        q, k, v = (t.view(1, 6, H, D // H).transpose(1, 2) for t in (q, k, v))
        expected_w = torch.zeros(1, H, 6, 6)
        z = torch.zeros(1, H, 6, D // H)
        for h in range(H):
            for i in range(6):
                e = torch.full((6,), float("-inf"))
                for j in range(i + 1):
                    a_k = pos.key_table[max(-k_clip, min(k_clip, j - i)) + k_clip]
                    e[j] = q[0, h, i] @ (k[0, h, j] + a_k) / math.sqrt(D // H)
                alpha = e.softmax(-1)
                expected_w[0, h, i] = alpha
                for j in range(i + 1):
                    a_v = pos.value_table[max(-k_clip, min(k_clip, j - i)) + k_clip]
                    z[0, h, i] += alpha[j] * (v[0, h, j] + a_v)
        expected_y = att.proj(z.transpose(1, 2).reshape(1, 6, D))
    torch.testing.assert_close(weights, expected_w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y, expected_y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["relative", "t5", "xl"])
def test_scheme_parameters_get_gradients_across_steps_and_shared_layers(name):
    pos = build(name, d_model=D, n_heads=H)
    layers = [CausalSelfAttention(D, H, positional=pos, layer_index=i) for i in range(2)]  # one shared scheme
    for _ in range(2):  # a second backward must not touch a graph freed by the first
        x = torch.randn(2, 7, D)
        for layer in layers:
            x = x + layer(x)
        x.pow(2).mean().backward()
    grads = [p.grad for p in pos.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["alibi", "t5"])
def test_bias_is_built_once_for_every_layer_of_a_step(name):
    pos = build(name, n_heads=H)
    layers = [CausalSelfAttention(D, H, positional=pos, layer_index=i) for i in range(3)]
    seen = []
    original = type(pos).score_bias

    def spy(self, *args):
        seen.append(original(self, *args))
        return seen[-1]

    with mock.patch.object(type(pos), "score_bias", spy), torch.no_grad():
        x = torch.randn(1, 8, D)
        for layer in layers:
            x = layer(x)
    assert len(seen) == 3 and seen[1] is seen[0] and seen[2] is seen[0]


def test_heads_must_divide_d_model():
    with pytest.raises(TokvecValueError, match=r"n_heads \(5\) must divide d_model \(32\)"):
        CausalSelfAttention(32, 5, positional=build("none"))


@pytest.mark.parametrize("name", SCHEMES)
def test_query_blocks_give_the_same_outputs_and_weights_as_one_block(name, monkeypatch):
    att = attention(name)
    x = torch.randn(2, 11, D)
    with torch.no_grad():
        y, w = att(x, need_weights=True)
        y_fused = att(x)
        monkeypatch.setattr("tokvec.model.attention.QUERY_BLOCK", 4)  # blocks of 4, 4, 3 queries
        y_blocks, w_blocks = att(x, need_weights=True)
        y_blocks_fused = att(x)
    torch.testing.assert_close(w_blocks, w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(y_blocks, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_blocks_fused, y_fused, atol=1e-5, rtol=1e-5)
