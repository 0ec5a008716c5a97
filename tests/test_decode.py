"""The one-token decoding steps (model/decode.py): the same logits and cache as the model's own
forward, for every positional scheme and block variant; weight copies rebuilt when weights change;
the oneDNN switch restored; the memory the copies take."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tokvec import GPT, ModelConfig
from tokvec.model.attention import KVCache
from tokvec.model.fast.decode import Decoder
from tokvec.positional import available

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

VARIANTS = [{}, {"norm": "rmsnorm", "activation": "swiglu", "bias": False, "tie_embeddings": False}]


def model_for(positional="learned", **kw) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, context_length=32, d_model=32, n_layers=2, n_heads=2, positional=positional, **kw)
    return GPT(cfg).eval()


def reference_step(model: GPT, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """The model's own path for one new token: (b, 1) -> logits (b, V)."""
    return model.lm_head(model.hidden(ids, cache=cache)[:, -1])


def prefilled(model: GPT, ids: torch.Tensor, cache: KVCache | None = None) -> KVCache:
    cache = model.new_cache() if cache is None else cache
    model.hidden(ids, cache=cache)
    return cache


@pytest.mark.parametrize("scheme", available())
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cache_type", ["preallocated", "concatenating"])
def test_steps_equal_the_model_forward(scheme, variant, cache_type):
    model = model_for(scheme, **variant)
    ids = torch.randint(0, 11, (2, 14), generator=torch.Generator().manual_seed(1))
    make = model.new_cache if cache_type == "preallocated" else (lambda: KVCache(model.config.n_layers))
    with torch.no_grad():
        ours, theirs = prefilled(model, ids[:, :5], make()), prefilled(model, ids[:, :5], make())
        decoder = Decoder(model)
        for i in range(5, 14):  # one token at a time, positions 5 .. 13
            got = decoder.step(ids[:, i : i + 1], ours)
            want = reference_step(model, ids[:, i : i + 1], theirs)
            assert got.shape == (2, 11)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert ours.length == theirs.length == 14
    for (k, v), (k_ref, v_ref) in zip(ours.layers, theirs.layers):
        torch.testing.assert_close(k, k_ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(v, v_ref, rtol=1e-5, atol=1e-5)


def test_weight_copies_are_in_out_contiguous_and_cost_one_copy_of_the_matmul_weights():
    model = model_for()
    with torch.no_grad():
        decoder = Decoder(model)
        decoder.step(torch.tensor([[3]]), prefilled(model, torch.tensor([[1, 2]])))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]  # 4 per block + the (tied) head
    assert len(linears) == 9
    for linear in linears:
        copy = decoder.weight_t(linear)
        assert copy.is_contiguous() and torch.equal(copy, linear.weight.t())
        assert copy.data_ptr() != linear.weight.data_ptr()  # a copy: the parameter itself is untouched
    d, f, V, L = 32, 128, 11, 2
    assert decoder.nbytes == 4 * (L * (3 * d * d + d * d + d * f + f * d) + V * d)


@pytest.mark.parametrize("change", ["in place", "new parameter", "data"])
def test_weight_copies_follow_weight_changes(change):
    """Between two steps a weight changes (an optimizer step, load_state_dict, a reassignment):
    the next step uses the new weight, not the stale copy."""
    model = model_for()
    prompt, tok = torch.tensor([[1, 2, 3]]), torch.tensor([[4]])
    with torch.no_grad():
        decoder = Decoder(model)
        decoder.step(tok, prefilled(model, prompt))  # copies built
        fc = model.blocks[1].mlp.fc
        new = torch.randn_like(fc.weight)
        if change == "in place":
            fc.weight.copy_(new)  # what load_state_dict and optimizers do
        elif change == "new parameter":
            fc.weight = nn.Parameter(new)
        else:
            fc.weight.data = new
        assert torch.equal(decoder.weight_t(fc), new.t())
        got = decoder.step(tok, prefilled(model, prompt))
        want = reference_step(model, tok, prefilled(model, prompt))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("enabled", [True, False])
def test_onednn_setting_restored_after_each_step(enabled):
    model = model_for()
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        with torch.no_grad():
            decoder = Decoder(model)
            cache = prefilled(model, torch.tensor([[1, 2]]))
            decoder.step(torch.tensor([[3]]), cache)
            assert torch.backends.mkldnn.enabled is enabled
            with pytest.raises(IndexError):  # a failing step restores it too
                decoder.step(torch.tensor([[99]]), cache)
            assert torch.backends.mkldnn.enabled is enabled
    finally:
        torch.backends.mkldnn.enabled = before


def test_generate_uses_the_decoder_and_frees_it(monkeypatch):
    """generate builds one Decoder per call (after the prefill) and keeps no reference to it."""
    import gc
    import weakref

    made = []
    original = Decoder.__init__

    def spy(self, model):
        original(self, model)
        made.append(weakref.ref(self))

    monkeypatch.setattr(Decoder, "__init__", spy)
    model = model_for()
    out = model.generate(torch.tensor([[1, 2, 3]]), 5, temperature=0)
    assert out.shape == (1, 8) and len(made) == 1
    gc.collect()
    assert made[0]() is None  # the weight copies went with it
    model.generate(torch.tensor([[1, 2, 3]]), 1, temperature=0)  # prefill only: no step, no copies
    assert len(made) == 1
