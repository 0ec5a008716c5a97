"""Attention with a learned relative score term that is constant beyond a band of distances.

T5's bucketed bias and Shaw's relative keys (and values) give query i and key j a score term that
depends on the distance d = i - j only, and is the same for every distance d >= W (T5: W = the
first distance in the last bucket, 113 by default; Shaw: W = k, the clipped embedding). A learned term must be
differentiated, and ``F.scaled_dot_product_attention`` has no gradient for a float ``attn_mask``: it
falls back to the unfused math path, twice the time of the fused kernel at s = 1024. This module
keeps the fused CPU kernel for q, k and v in both directions and gets the term's gradient from the
band alone:

- Softmax ignores a constant added to a whole row, so the far value f_i is subtracted from the row:
  the mask holds ``table[d] - f_i`` on the W diagonals of the band and 0 further away. At offset 0
  the kernel runs causal and skips the future half itself (``F.scaled_dot_product_attention`` refuses
  ``is_causal`` with a mask; the kernel takes both); at an offset (a KV cache) the future is -inf.
- Every row of dS = dL/dscores sums to zero (dS_ij = P_ij (dP_ij - D_i), D_i = sum_j P_ij dP_ij), so
  the gradient of the far value, the sum of dS over all far keys, is minus the sum over the band.
  Only the band of dS is computed (a window of C queries x C + W - 1 keys at a time), from the
  kernel's own log-sum-exp.
- Shaw's value term (sum_j P_ij a_d(ij)) is the band's P times the value rows, plus (1 - sum of the
  band's P) times the far row. Its gradient with respect to the scores is folded into the kernel's
  backward by handing it ``out - a_far`` in place of ``out`` (the kernel uses ``out`` only through
  D_i = dO_i . out_i), plus a correction that is nonzero on the band only.

``relative_attention(q, k, v, table, values, offset)`` is the entry point; the tests check it
against the same attention written out and differentiated by autograd.

Shape legend: b = batch, h = heads, s = queries (at positions offset .. offset + s - 1), t = offset + s
keys (at 0 .. t - 1), hd = head_dim, W = band width, B' in {1, b}, s' in {1, s} (broadcast).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import TokvecValueError

_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_flash_backward = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)


def cpu_kernel(device_type: str, dtype: torch.dtype) -> bool:
    """The one guard of the private CPU kernel: True only for CPU tensors of float32/64 on a torch build
    that has both its forward and backward ops. Everything else (CUDA, MPS, bf16, a build without
    the op) takes the layer's public ``F.scaled_dot_product_attention`` path, which on CUDA runs a
    float mask through its own fused kernels."""
    return (
        _flash is not None
        and _flash_backward is not None
        and device_type == "cpu"
        and dtype in (torch.float32, torch.float64)
    )


def available(q: Tensor) -> bool:
    """Whether ``q`` (and the k, v beside it) can use the fused CPU path: :func:`cpu_kernel` of its device."""
    return cpu_kernel(q.device.type, q.dtype)


def _mask(table: Tensor, s: int, offset: int) -> Tensor:
    """The additive mask (B', h, s, t), contiguous (a strided view costs the kernel 30% more): the band
    diagonals hold ``table[d] - table[W]``, far keys 0, the future -inf (left at 0 for offset 0,
    where the kernel runs causal and never reads it)."""
    bb, h, _, width = table.shape
    w = width - 1
    t = offset + s
    mask = table.new_zeros(bb, h, s, t)
    if offset:
        mask.masked_fill_(_distance(0, s, 0, t, offset, table.device) < 0, float("-inf"))
    band = (table[..., :w] - table[..., w:]).flip(-1).expand(bb, h, s, w)  # column W-1-d: distance d
    # row i's band is keys offset + i - W + 1 .. offset + i: a strided view of W per row, for the rows
    # whose band starts at key 0 or later; the first W - 1 - offset rows (cut at key 0) by a gather
    full = max(0, w - 1 - offset)
    if full < s:
        view = mask.as_strided((bb, h, s - full, w), (h * s * t, s * t, t + 1, 1), full * t + full + offset - w + 1)
        view.copy_(band[:, :, full:])
    if full:
        rows = min(full, s)
        column = w - 1 - _distance(0, rows, 0, t, offset, table.device)  # (rows, t): key j's band column
        inside = (column >= 0) & (column < w)
        picked = band[:, :, :rows].gather(-1, column.clamp(0, w - 1).expand(bb, h, rows, t))
        mask[:, :, :rows] = torch.where(inside, picked, mask[:, :, :rows])
    return mask


class _RelativeAttention(torch.autograd.Function):
    # Inside, a band is kept in key order: (b, h, rows, W), column c holds key i - (W - 1) + c, i.e.
    # distance W - 1 - c, so that it is a strided view of a (queries x keys) window, not a gather.
    @staticmethod
    def forward(
        ctx, q: Tensor, k: Tensor, v: Tensor, table: Tensor, values: Tensor | None, offset: int, chunk: int
    ) -> Tensor:
        b, h, s, hd = q.shape
        w = table.shape[-1] - 1
        scale = 1.0 / math.sqrt(hd)
        mask = _mask(table.detach(), s, offset)
        # offset 0: the kernel's own causal skipping of the future half (the mask's -inf agrees with it)
        out, lse = _flash(q, k, v, 0.0, offset == 0, attn_mask=mask, scale=scale)
        y = out
        if values is not None:
            # the band's weights P(i, i - d), d < W, and what is left over for the far keys
            shift = (table[..., :w] - table[..., w:]).detach().flip(-1)  # the band's mask values, key order
            p_band = torch.cat(
                [_band_probs(q, k, shift, lse, r, min(r + chunk, s), offset, w, scale) for r in range(0, s, chunk)],
                dim=2,
            )
            far_share = _has_far(s, offset, w, q.device) * (1.0 - p_band.sum(-1, keepdim=True))  # (b, h, s, 1)
            y = out + p_band @ values[:w].flip(0) + far_share * values[w]
        ctx.save_for_backward(q, k, v, y, lse, mask, table, values)
        ctx.offset, ctx.chunk, ctx.scale = offset, chunk, scale
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):
        q, k, v, y, lse, mask, table, values = ctx.saved_tensors
        offset, chunk, scale = ctx.offset, ctx.chunk, ctx.scale
        b, h, s, hd = q.shape
        w = table.shape[-1] - 1
        dy = dy.contiguous()
        out_for_d = y if values is None else y - values[w]  # D_i = dy_i . (y_i - a_far): see the module doc
        dq, dk, dv = _flash_backward(dy, q, k, v, out_for_d, lse, 0.0, offset == 0, attn_mask=mask, scale=scale)
        per_row = table.shape[2] != 1  # a table row per query (Shaw) or one for all (T5)
        grad_band = q.new_zeros(table.shape[:3] + (w,))  # key order; summed over what the table broadcasts
        grad_far = q.new_zeros(table.shape[:3] + (1,))
        grad_values = None if values is None else torch.zeros_like(values)
        row_dot = (dy * y).sum(-1, keepdim=True)  # (b, h, s, 1): D_i of the true scores
        shift = (table[..., :w] - table[..., w:]).flip(-1)  # (B', h, s', W): the band's mask values, key order
        if values is not None:
            values_k = torch.cat([values[:w].flip(0), values[w:]])  # key order, then the far row
            e = dy @ values_k.t()  # (b, h, s, W + 1): dy_i . a for each band key, then for the far row
        for r0 in range(0, s, chunk):
            r1 = min(r0 + chunk, s)
            j0, j1 = max(0, offset + r0 - w + 1), offset + r1  # the keys of these queries' bands
            if values is None:
                p_band = _band_probs(q, k, shift, lse, r0, r1, offset, w, scale)  # (b, h, rows, W)
            else:
                p = _window_probs(q, k, mask, lse, r0, r1, offset, w, scale)  # (b, h, rows, keys)
                p_band = _band(p, r0, r1, offset, w)
            g_band = _band_dots(dy[:, :, r0:r1], v, r0, r1, offset, w)  # dy_i . v_j
            has_far = _has_far(r1 - r0, offset + r0, w, q.device)  # (rows, 1)
            if values is not None:
                e_rows = e[:, :, r0:r1]  # (b, h, rows, W + 1)
                # the part of dL/dscores the kernel did not see, P_ij (dy_i . (a_d - a_far)): band only
                d = _distance(r0, r1, j0, j1, offset, q.device)  # (rows, keys)
                column = torch.where((d >= 0) & (d < w), w - 1 - d, w)  # of e_rows; the future has P = 0
                correction = p * (e_rows.gather(-1, column.expand(b, h, -1, -1)) - e_rows[..., w:])
                dq[:, :, r0:r1] += scale * (correction @ k[:, :, j0:j1])
                dk[:, :, j0:j1] += scale * (correction.transpose(-2, -1) @ q[:, :, r0:r1])
                g_band = g_band + e_rows[..., :w]
                grad_values[:w] += torch.einsum("bhid,bhie->de", p_band, dy[:, :, r0:r1]).flip(0)
                far_share = has_far * (1.0 - p_band.sum(-1, keepdim=True))
                grad_values[w] += (far_share * dy[:, :, r0:r1]).sum((0, 1, 2))
            ds_band = p_band * (g_band - row_dot[:, :, r0:r1])  # dL/dscores on the band, P_ij (dP_ij - D_i)
            far = -has_far * ds_band.sum(-1, keepdim=True)  # the far keys' sum: minus the band's (rows sum to 0)
            rows = slice(r0, r1) if per_row else slice(None)
            grad_band[:, :, rows] += _reduce_to(ds_band, grad_band[:, :, rows].shape)
            grad_far[:, :, rows] += _reduce_to(far, grad_far[:, :, rows].shape)
        grad_table = torch.cat([grad_band.flip(-1), grad_far], dim=-1)
        return dq, dk, dv, grad_table, grad_values, None, None


def _distance(r0: int, r1: int, j0: int, j1: int, offset: int, device) -> Tensor:
    """(rows, keys) int64: distance (offset + i) - j of queries r0..r1-1 to keys j0..j1-1 (negative: future)."""
    return torch.arange(offset + r0, offset + r1, device=device).unsqueeze(1) - torch.arange(
        j0, j1, device=device
    ).unsqueeze(0)


def _band_dots(rows: Tensor, x: Tensor, r0: int, r1: int, offset: int, w: int) -> Tensor:
    """rows: (b, h, n, hd) of queries r0..r1-1; x: keys or values (b, h, t, hd) -> (b, h, n, W), column
    c the dot product with key (offset + i) - (W - 1) + c (0 for a key before the first)."""
    start = offset + r0 - w + 1  # the first band key of row r0
    keys = x[:, :, max(start, 0) : offset + r1]
    if start < 0:  # the first rows' bands begin before key 0: zeros stand for the missing keys
        keys = torch.cat([x.new_zeros(x.shape[0], x.shape[1], -start, x.shape[3]), keys], dim=2)
    window = rows @ keys.transpose(-2, -1)  # (b, h, n, n + W - 1)
    b, h, n, width = window.shape
    return window.as_strided((b, h, n, w), (h * n * width, n * width, width + 1, 1))  # row i: columns i .. i+W-1


def _band_probs(
    q: Tensor, k: Tensor, shift: Tensor, lse: Tensor, r0: int, r1: int, offset: int, w: int, scale: float
) -> Tensor:
    """Softmax weights of queries r0..r1-1 for the W keys ending at each: (b, h, rows, W) in key order,
    0 where the key does not exist. From the kernel's log-sum-exp: the full softmax's, not renormalised."""
    scores = _band_dots(q[:, :, r0:r1], k, r0, r1, offset, w)
    scores = torch.add(shift if shift.shape[2] == 1 else shift[:, :, r0:r1], scores, alpha=scale)
    # clamped at -80 (P = e^-80 ~ 1.8e-35 where it is smaller): exp of anything below -87 (a denormal
    # or zero result) or of -inf takes 10-70x longer on a CPU than of -80
    p = scores.sub_(lse[:, :, r0:r1].unsqueeze(-1)).clamp_(min=-80.0).exp_()
    return p if offset + r0 >= w - 1 else p * _band_valid(r0, r1, offset, w, q.device).to(p.dtype)


def _window_probs(
    q: Tensor, k: Tensor, mask: Tensor, lse: Tensor, r0: int, r1: int, offset: int, w: int, scale: float
) -> Tensor:
    """Softmax weights of queries r0..r1-1 for every key of their band window j0 .. offset + r1 - 1
    (b, h, rows, keys), 0 for the future; far keys in the window included."""
    j0, j1 = max(0, offset + r0 - w + 1), offset + r1
    scores = (q[:, :, r0:r1] * scale) @ k[:, :, j0:j1].transpose(-2, -1) + mask[:, :, r0:r1, j0:j1]
    p = scores.sub_(lse[:, :, r0:r1].unsqueeze(-1)).clamp_(min=-80.0).exp_()  # clamped: see _band_probs
    return p.masked_fill_(_distance(r0, r1, j0, j1, offset, q.device) < 0, 0.0)


def _band_valid(r0: int, r1: int, offset: int, w: int, device) -> Tensor:
    """(rows, W) bool, key order: key (offset + i) - (W - 1) + c exists (is >= 0)."""
    return (
        torch.arange(offset + r0, offset + r1, device=device).unsqueeze(1)
        - (w - 1)
        + torch.arange(w, device=device).unsqueeze(0)
    ) >= 0


def _band(local: Tensor, r0: int, r1: int, offset: int, w: int) -> Tensor:
    """The W keys ending at each query, in key order, of a (b, h, rows, keys) window of queries
    r0..r1-1 whose keys start at j0 = max(0, offset + r0 - W + 1): (b, h, rows, W), a strided view of
    the window (no gather). Where a query has fewer than W keys, the window is first padded on the
    left with zeros, which stand for the missing keys."""
    j0 = max(0, offset + r0 - w + 1)
    start = offset + r0 - w + 1 - j0  # window column of row 0's first band key (< 0: missing keys)
    if start < 0 or not local.is_contiguous():
        local = F.pad(local, (-start, 0)) if start < 0 else local.contiguous()
        start = 0
    b, h, rows, keys = local.shape
    return local.as_strided(
        (b, h, rows, w), (h * rows * keys, rows * keys, keys + 1, 1), local.storage_offset() + start
    )


def _has_far(rows: int, offset: int, w: int, device) -> Tensor:
    """(rows, 1) float: 1 where query offset + i has keys at distance >= W (i.e. offset + i >= W)."""
    return (torch.arange(offset, offset + rows, device=device) >= w).unsqueeze(1).float()


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a (b, h, s, W+1) gradient over the dimensions ``shape`` broadcast (size 1)."""
    dims = [i for i, (g, t) in enumerate(zip(grad.shape, shape)) if t == 1 and g != 1]
    return grad.sum(dims, keepdim=True) if dims else grad


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, offset: int = 0) -> Tensor:
    """Causal attention with a constant float mask (1 or b, h, s, t) that already holds -inf in the future:
    the fused CPU kernel, differentiable in q, k, v. At offset 0 the kernel also skips the future half
    itself, which ``F.scaled_dot_product_attention`` cannot do with a mask (it refuses ``is_causal``
    and ``attn_mask`` together), so the whole sequence goes in one call."""
    return _flash(q, k, v, 0.0, offset == 0, attn_mask=mask)[0]


def relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    table: Tensor,
    values: Tensor | None = None,
    offset: int = 0,
    chunk: int | None = None,
) -> Tensor:
    """Causal attention of queries q (b, h, s, hd) at ``offset ..`` over keys/values (b, h, offset + s, hd)
    with a score term that depends on the distance only: ``table`` (B', h, s', W + 1), column d < W for
    distance d and column W for every distance >= W, in the units of the scaled scores. ``values``
    (W + 1, hd), optional: a value term laid out the same way (Shaw). Returns (b, h, s, hd).

    Differentiable in q, k, v, table and values; no dropout (use the explicit path for that).
    """
    w = table.shape[-1] - 1
    if w < 1:
        raise TokvecValueError(
            f"relative_attention needs a band of at least one distance; table has "
            f"{table.shape[-1]} column(s), expected W + 1 >= 2"
        )
    if chunk is None:  # rows per band window: the window is chunk + W - 1 keys wide, so small for a wide band
        chunk = min(128, max(32, w))
    return _RelativeAttention.apply(q, k, v, table, values, offset, chunk)
