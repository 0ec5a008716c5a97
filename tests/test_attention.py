"""CausalSelfAttention with every positional scheme: KV cache, SDPA use, explicit weights, gradients."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from tokvec.errors import TokvecValueError
from tokvec.model import CausalSelfAttention, KVCache
from tokvec.model.fast import banded
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
        steps += [att(x[:, i : i + 1], cache=cache) for i in range(9, 13)]
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


@pytest.mark.parametrize(
    "name,path",
    [
        ("none", "sdpa"),
        ("rope", "sdpa"),
        ("xl", "sdpa"),
        ("alibi", "masked"),
        ("t5", "relative"),
        ("relative-keys", "relative"),
        ("relative", "relative"),
    ],
)
def test_schemes_stay_on_the_fused_kernel(name, path):
    """No scheme writes the weights out unless asked to: NoPE, RoPE and XL's term go to SDPA, a
    constant bias to the kernel with causal skipping, the learned distance terms (T5, Shaw keys and
    values) to model/fast/banded.py's fused path with its banded backward."""
    att = attention("relative", values=False) if name == "relative-keys" else attention(name)
    with (
        mock.patch(
            "tokvec.model.attention.F.scaled_dot_product_attention", wraps=F.scaled_dot_product_attention
        ) as sdpa,
        mock.patch("tokvec.model.attention.banded.masked_attention", wraps=banded.masked_attention) as masked,
        mock.patch("tokvec.model.attention.banded.relative_attention", wraps=banded.relative_attention) as relative,
        mock.patch.object(CausalSelfAttention, "_explicit") as explicit,
    ):
        att(torch.randn(1, 600, D)).sum().backward()
    called = {"sdpa": sdpa.called, "masked": masked.called, "relative": relative.called}
    assert called == {key: key == path for key in called} and not explicit.called


def test_a_short_sequence_trains_t5_on_the_math_path_and_infers_on_the_fused_one():
    """T5's band is 113 distances wide: below 5 band widths of keys the banded backward costs more
    than the math path, so training takes the latter; without gradients the fused kernel always wins."""
    att = attention("t5")
    with mock.patch("tokvec.model.attention.banded.relative_attention", wraps=banded.relative_attention) as fused:
        att(torch.randn(1, 300, D)).sum().backward()
        assert not fused.called
        with torch.no_grad():
            att(torch.randn(1, 300, D))
        assert fused.called


def test_shaw_values_with_dropout_write_the_weights_out():
    att = CausalSelfAttention(D, H, positional=build("relative", d_model=D, n_heads=H), dropout=0.1).train()
    with mock.patch.object(CausalSelfAttention, "_explicit", wraps=att._explicit) as explicit:
        att(torch.randn(1, 6, D))
    assert explicit.called  # dropout acts on the weights the value term sees: the fused path has none


@pytest.mark.slow
@pytest.mark.parametrize("name", ["t5", "relative"])
def test_fused_distance_path_equals_the_explicit_path_with_gradients(name):
    """Same layer, same input: the banded fused path against the weights written out (need_weights),
    output and every parameter's gradient, over 600 tokens (T5's far bucket starts at 113; from 565
    keys on, 5 band widths, training takes the banded path)."""
    torch.manual_seed(0)
    att = CausalSelfAttention(D, H, positional=build(name, d_model=D, n_heads=H)).double()
    x = torch.randn(2, 600, D, dtype=torch.float64)
    with mock.patch("tokvec.model.attention.banded.relative_attention", wraps=banded.relative_attention) as fused:
        y = att(x)
    assert fused.called
    grads = torch.autograd.grad(y.square().sum(), list(att.parameters()))
    y_ref = att(x, need_weights=True)[0]
    grads_ref = torch.autograd.grad(y_ref.square().sum(), list(att.parameters()))
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-9)
    for (pname, _), g, r in zip(att.named_parameters(), grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9, msg=pname)


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


def test_alibi_mask_is_built_once_for_every_layer_of_a_step():
    pos = build("alibi", n_heads=H)
    layers = [CausalSelfAttention(D, H, positional=pos, layer_index=i) for i in range(3)]
    with (
        mock.patch("tokvec.model.attention.banded.masked_attention", wraps=banded.masked_attention) as fused,
        torch.no_grad(),
    ):
        x = torch.randn(1, 8, D)
        for layer in layers:
            x = layer(x)
    masks = [c.args[3] for c in fused.call_args_list]
    assert len(masks) == 3 and masks[1] is masks[0] and masks[2] is masks[0]  # not rebuilt per layer


def test_alibi_mask_cuts_negligible_biases_and_the_future():
    pos = build("alibi", n_heads=2)  # slopes 2^-4, 2^-8
    mask = pos.attention_bias(3, 1100, offset=1097)  # queries at 1097 .. 1099
    assert mask.shape == (1, 2, 3, 1100)
    exact = pos.score_bias(3, 1100, offset=1097)
    # head 0: bias -d/16 falls below -64 past distance 1024; head 1 (-d/256) never does here
    assert torch.isinf(mask[0, 0, 0, : 1097 - 1024]).all() and mask[0, 0, 0, 1097 - 1024] == exact[0, 0, 1097 - 1024]
    assert torch.equal(mask[0, 1, 0, :1098], exact[1, 0, :1098])
    assert torch.isinf(mask[0, :, 0, 1098:]).all()  # the future of the first query
    assert torch.isinf(mask[0, :, 1, 1099:]).all() and not torch.isinf(mask[0, 1, 2]).any()  # last query: no future


def test_heads_must_divide_d_model(error_says):
    with error_says(TokvecValueError, "n_heads (5)", "d_model (32)"):
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
