"""One-token decoding steps through a GPT and its KV cache, with the matmul weights laid out for them.

Generating with a KV cache, each step multiplies ONE row per sequence by every weight of the model:
the step reads all the weights and does little arithmetic with them, so its speed is the memory
bandwidth of reading them, and the layout of that read matters. ``nn.Linear`` keeps W as
(out, in) and ``F.linear`` multiplies by its transpose; on a CPU, one row times an (in, out)
contiguous matrix (``torch.addmm(b, x, W_t)``, the layout of Hugging Face's ``Conv1D``) reads the
same bytes about 1.15x faster: 1 thread, the 24 matmuls of a d 384, 6-layer model (42.5 MB of
weights) take 3.7 ms instead of 4.3 ms (4.5 instead of 5.1 with the other core busy); 3.7 ms is
11.5 GB/s, what one core can stream from memory here.

:class:`Decoder` keeps an (in, out) contiguous copy of every Linear weight of the model (the LM
head included) for the steps of one generation, and runs a step with as few tensor operations as
the maths needs (rows stay (b, d); no positions tensor unless the scheme rotates; q, k, v are
views of the one qkv product; the attention output of one query needs no transpose).

Memory: the copies cost one extra copy of the matmul weights while generating (42.5 MB for the d
384, 6-layer model; about 0.5 GB for gpt2-124m, whose 50257-row LM head is one of them). They are
freed with the Decoder, i.e. when the generation ends; nothing changes for training or the state
dict. A copy is rebuilt if its weight changes (in place or replaced) between steps.

Inference only: eval mode (no dropout) under ``torch.no_grad()``, as ``generate`` runs it.
Shape legend: b = batch, d = d_model, h = heads, hd = head_dim, t = cached + new tokens, V = vocab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from ..attention import KVCache


class Decoder:
    """Steps of one new token per row through ``model`` with ``cache``: ``logits = dec.step(ids, cache)``.

    Gives the logits of ``model.lm_head(model.hidden(ids, cache=cache)[:, -1])`` (to float rounding:
    the same sums in a different order) and appends the same keys and values to the cache.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        # (weight, its _version, its data_ptr, the (in, out) copy) per Linear, keyed by the module
        self._copies: dict[nn.Linear, tuple[Tensor, int, int, Tensor]] = {}
        self._fused = [not (b.attn.positional.adds_scores or b.attn.positional.adds_values) for b in model.blocks]

    def weight_t(self, linear: nn.Linear) -> Tensor:
        """The (in, out) contiguous copy of ``linear.weight``, rebuilt when the weight has changed."""
        w = linear.weight
        hit = self._copies.get(linear)
        if hit is None or hit[0] is not w or hit[1] != w._version or hit[2] != w.data_ptr():
            copy = w.detach().t().contiguous()  # (in, out)
            self._copies[linear] = hit = (w, w._version, w.data_ptr(), copy)
        return hit[3]

    @property
    def nbytes(self) -> int:
        """Bytes held by the weight copies (the memory cost of decoding this way)."""
        return sum(c[3].numel() * c[3].element_size() for c in self._copies.values())

    def linear(self, x: Tensor, linear: nn.Linear) -> Tensor:
        """``linear(x)`` for rows x: (b, in) -> (b, out), multiplying by the (in, out) copy."""
        wt = self.weight_t(linear)
        if linear.bias is None:
            return torch.mm(x, wt)
        return torch.addmm(linear.bias, x, wt)

    def step(self, ids: Tensor, cache: KVCache) -> Tensor:
        """ids: (b, 1), the newest token of each row -> logits (b, V) of the token after it.

        The token takes position ``cache.length``; its keys and values are appended to ``cache``.
        The ids are not checked: they are the ones ``generate`` just sampled.
        """
        # oneDNN off for the step: F.gelu of one row goes through a oneDNN primitive that costs
        # ~20-60 us a call (6 calls a step); ATen's own kernel takes ~5 us. Restored after each
        # step, so the caller's code between steps (a stream's consumer) keeps the global setting.
        # The setting is process-wide: another thread running meanwhile gets ATen kernels too
        # (same results to float rounding, only its speed changes).
        # Only for CPU tensors: oneDNN is a CPU library, elsewhere the switch would only slow the CPU
        # work of other threads.
        if not onednn_switch(ids.device.type):
            return self._step(ids, cache)
        onednn = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            return self._step(ids, cache)
        finally:
            torch.backends.mkldnn.enabled = onednn

    def _step(self, ids: Tensor, cache: KVCache) -> Tensor:
        model = self.model
        b = ids.shape[0]
        offset = cache.length
        x = self._embed(ids.view(b), offset)  # (b, d)
        pos = model.embed.positional
        positions = torch.arange(offset, offset + 1, device=ids.device) if pos.rotates else None
        for i, block in enumerate(model.blocks):
            h = _norm(x, block.norm1)
            if self._fused[i]:
                x = x.add_(self._attention(h, block.attn, cache, positions))
            else:  # a scheme that adds to the scores: the layer's own path (s = 1 queries, one block)
                x = x.add_(block.attn(h.unsqueeze(1), cache=cache).view(b, -1))
            x = x.add_(self._mlp(_norm(x, block.norm2), block.mlp))
        return self.linear(_norm(x, model.norm), model.lm_head)  # (b, V)

    def _embed(self, ids: Tensor, offset: int) -> Tensor:
        """What InputEmbedding gives a token at position ``offset``, without its checks. ids: (b,) -> (b, d)."""
        embed = self.model.embed
        x = F.embedding(ids, embed.token.weight)  # (b, d), fresh: added to in place below
        if embed.token.scale != 1.0:
            x = x.mul_(embed.token.scale)
        if embed.positional.acts_on == "input":
            x = x.add_(embed.positional.table(1, offset).to(x.dtype))  # (1, d): a row of the table
        return x

    def _attention(self, x: Tensor, attn: nn.Module, cache: KVCache, positions: Tensor | None) -> Tensor:
        """One query per row. x: (b, d) -> (b, d); appends this token's k, v to layer attn's cache."""
        b, d = x.shape
        h, hk, hd, kv = attn.n_heads, attn.n_kv_heads, attn.head_dim, attn.kv_dim
        qkv = self.linear(x, attn.qkv)  # (b, d + 2 kv)
        q = qkv[:, :d].view(b, h, 1, hd)  # (b, h, 1, hd) views of the one product
        k = qkv[:, d : d + kv].view(b, hk, 1, hd)  # (b, hk, 1, hd)
        v = qkv[:, d + kv :].view(b, hk, 1, hd)
        if positions is not None:
            q, k = attn.positional.rotate(q, k, positions, end=cache.length + 1)
        k, v = cache.update(attn.layer_index, k, v)  # (b, hk, t, hd)
        k, v = attn.repeat_kv(k), attn.repeat_kv(v)  # (b, h, t, hd)
        y = F.scaled_dot_product_attention(q, k, v)  # (b, h, 1, hd): one query sees every cached key
        return self.linear(y.reshape(b, d), attn.proj)  # with one query, (b, h, 1, hd) -> (b, d) is a view

    def _mlp(self, x: Tensor, mlp: nn.Module) -> Tensor:
        """The block's feed-forward network on rows. x: (b, d) -> (b, d)."""
        hidden = self.linear(x, mlp.fc)  # (b, f) or (b, 2f)
        if mlp.activation == "swiglu":
            gate, up = hidden.chunk(2, dim=-1)
            hidden = F.silu(gate) * up
        else:
            hidden = F.gelu(hidden, approximate="tanh" if mlp.activation == "gelu_new" else "none")
        return self.linear(hidden, mlp.proj)


def onednn_switch(device_type: str) -> bool:
    """Whether a decoding step on this device type turns oneDNN off for its duration (CPU only)."""
    return device_type == "cpu"


def _norm(x: Tensor, norm: nn.Module) -> Tensor:
    """norm(x) for rows x: (b, d); a LayerNorm through F.layer_norm (skips the module call's overhead)."""
    if type(norm) is nn.LayerNorm:
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
    return norm(x)
