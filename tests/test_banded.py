"""The fused relative-attention path (model/banded.py) against the same attention written out.

The reference builds the full score matrix q.k/sqrt(hd) + table[min(i - j, W)], masks the future,
takes the softmax, adds Shaw's value term sum_j P_ij values[min(i - j, W)], and lets autograd
differentiate it. The fused path must give the same output and the same gradients for q, k, v, the
table and the values: with and without a far region, with an offset (a KV-cache prefill chunk),
with broadcast tables (T5: one row for every query and batch) and per-query tables (Shaw).
"""

from __future__ import annotations

import math

import pytest
import torch

from tokvec.errors import TokvecValueError
from tokvec.model.fast import banded


def reference(q, k, v, table, values, offset):
    b, h, s, hd = q.shape
    t = k.shape[2]
    w = table.shape[-1] - 1
    i = torch.arange(offset, offset + s).unsqueeze(1)
    j = torch.arange(t).unsqueeze(0)
    dist = (i - j).clamp(0, w)
    term = table.expand(b, h, s, w + 1).gather(-1, dist.expand(b, h, s, t))
    scores = (q @ k.transpose(-2, -1) / math.sqrt(hd) + term).masked_fill(j > i, float("-inf"))
    p = scores.softmax(-1)
    y = p @ v
    if values is not None:
        y = y + (p.unsqueeze(-2) @ values[dist]).squeeze(-2)  # per query i: sum_j P_ij values[d(i, j)]
    return y


CASES = [  # b, h, s, offset, w, per-query table, values
    (2, 3, 40, 0, 8, True, False),  # Shaw keys: far keys for most rows
    (2, 3, 40, 0, 8, True, True),  # Shaw keys + values
    (2, 2, 33, 0, 16, False, False),  # T5-like: one row of biases for every query
    (1, 2, 17, 25, 6, True, True),  # a prefill chunk at offset 25 (KV cache)
    (2, 2, 12, 0, 30, True, True),  # band wider than the sequence: no far keys at all
    (1, 1, 50, 3, 1, False, True),  # W = 1: only the diagonal is special
]


@pytest.mark.parametrize("b,h,s,offset,w,per_query,with_values", CASES)
def test_fused_relative_attention_equals_the_written_out_attention(b, h, s, offset, w, per_query, with_values):
    torch.manual_seed(s + w)
    hd = 8
    q = torch.randn(b, h, s, hd, dtype=torch.float64, requires_grad=True)
    k = torch.randn(b, h, offset + s, hd, dtype=torch.float64, requires_grad=True)
    v = torch.randn(b, h, offset + s, hd, dtype=torch.float64, requires_grad=True)
    shape = (b, h, s, w + 1) if per_query else (1, h, 1, w + 1)
    table = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    values = torch.randn(w + 1, hd, dtype=torch.float64, requires_grad=True) if with_values else None
    grad_out = torch.randn(b, h, s, hd, dtype=torch.float64)
    inputs = [x for x in (q, k, v, table, values) if x is not None]

    want = reference(q, k, v, table, values, offset)
    want_grads = torch.autograd.grad(want, inputs, grad_out)
    got = banded.relative_attention(q, k, v, table, values, offset, chunk=7)
    got_grads = torch.autograd.grad(got, inputs, grad_out)

    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    for name, g, r in zip(["q", "k", "v", "table", "values"], got_grads, want_grads):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-8, msg=f"gradient of {name}")


def test_float32_matches_to_float32_precision():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 16, requires_grad=True) for _ in range(3))
    table = (0.1 * torch.randn(2, 4, 64, 9)).requires_grad_()
    values = (0.1 * torch.randn(9, 16)).requires_grad_()
    want = reference(q, k, v, table, values, 0)
    got = banded.relative_attention(q, k, v, table, values)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    g1 = torch.autograd.grad(want.square().sum(), [q, k, v, table, values])
    g2 = torch.autograd.grad(got.square().sum(), [q, k, v, table, values])
    for a, c in zip(g2, g1):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_a_table_without_a_band_is_refused(error_says):
    q = torch.randn(1, 1, 3, 4)
    with error_says(TokvecValueError, "1 column", "W + 1 >= 2"):
        banded.relative_attention(q, q, q, torch.zeros(1, 1, 1, 1))
