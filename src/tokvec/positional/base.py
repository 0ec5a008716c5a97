"""The interface every positional scheme implements.

Self-attention is blind to order; a positional scheme puts order back in one of two places:

- ``acts_on = "input"``: a vector per position is *added* to the token vectors inside
  :class:`~tokvec.InputEmbedding` (sinusoidal, learned absolute). Implement :meth:`pe`.
- ``acts_on = "attention"``: the attention layer asks the scheme to rotate q and k
  (:meth:`rotate`, RoPE) and/or for a bias added to the scores (:meth:`score_bias`, ALiBi, T5),
  and, for schemes whose score term depends on the queries or keys themselves, for that term
  (:meth:`score_term`, Shaw relative keys, Transformer-XL) and for a term added to the output
  (:meth:`value_term`, Shaw relative values; set ``adds_values`` so attention keeps the weights).
- ``acts_on = "none"``: NoPE; causal masking alone carries order.

Shape legend: b = batch, s = seq, h = heads, d = d_model, hd = head_dim.
Positions are absolute token indices; with a KV cache they start at the cache length (``offset``).
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from ..errors import TokvecTypeError, TokvecValueError

ACTS_ON = ("input", "attention", "none")
CONTEXT = frozenset({"d_model", "n_heads", "head_dim", "max_len"})  # model-wide, given to every scheme that takes it
NEGLIGIBLE_SCORE = 64.0  # a score bias below -64 counts as masked (see PositionalEncoding.attention_bias)


class PositionalEncoding(nn.Module):
    """Base class of every positional scheme; see the module docstring for the contract."""

    name: ClassVar[str] = "abstract"
    acts_on: ClassVar[str] = "none"

    # -- capabilities: each scheme declares what it does (class attributes, set in its own file);
    # attention and the model choose their paths from these, never from names or overrides. The
    # defaults fit an additive scheme (sinusoidal-like): nothing in attention, any length.
    rotates: ClassVar[bool] = False  # True when rotate() changes q and k (lets attention skip the call)
    has_score_bias: ClassVar[bool] = False  # True when score_bias() returns a tensor (ALiBi, T5)
    has_score_term: ClassVar[bool] = False  # True when score_term() returns a tensor (Shaw keys, XL)
    extrapolates: ClassVar[bool] = True  # False when positions past max_len have no vector (learned)

    @property
    def adds_scores(self) -> bool:
        """Whether attention must add a score bias or term (otherwise it can stay causal-fused)."""
        return self.has_score_bias or self.has_score_term

    # -- input schemes ------------------------------------------------------------------------
    def pe(self, positions: Tensor) -> Tensor:
        """Position vectors. positions: (s,) or (b, s) int64 -> (s, d) or (b, s, d)."""
        raise NotImplementedError(f"the {self.name!r} scheme acts on {self.acts_on!r}, it has no additive vectors")

    def table(self, seq_len: int, offset: int = 0) -> Tensor:
        """Vectors for positions ``offset .. offset + seq_len - 1``: (seq_len, d)."""
        device = next(iter(self.buffers()), next(iter(self.parameters()), torch.empty(0))).device
        return self.pe(torch.arange(offset, offset + seq_len, device=device))

    def add_(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """Add position vectors to ``x`` in place and return it. x: (b, s, d); positions: (s,) | (b, s).

        In place on purpose: ``x`` is the fresh output of the embedding lookup, and writing into it
        avoids allocating a second (b, s, d) tensor (about 2x faster at s=1024, d=512 on a CPU).
        """
        if positions is None:
            return x.add_(self.table(x.shape[-2]).to(x.dtype))
        return x.add_(self.pe(check_positions(positions, x.shape[0], x.shape[-2])).to(x.dtype))

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """``x`` plus its position vectors (a new tensor). x: (b, s, d) -> (b, s, d)."""
        if self.acts_on != "input":
            return x
        return self.add_(x.clone(), positions)

    # -- attention schemes --------------------------------------------------------------------
    def rotate(self, q: Tensor, k: Tensor, positions: Tensor, *, end: int | None = None) -> tuple[Tensor, Tensor]:
        """Rotate the new queries and keys by their absolute positions (before k enters the cache).

        q, k: (b, h, s, hd); positions: (s,) int64 -> (q, k) of the same shapes. Default: unchanged.
        end: the caller's promise that every position is in [0, end) (the attention layer knows it
        as offset + s), so the scheme need not read the positions back from the device to check.
        """
        return q, k

    def score_bias(self, q_len: int, k_len: int, offset: int = 0) -> Tensor | None:
        """Bias added to attention scores for queries at ``offset .. offset+q_len-1`` and keys at
        ``0 .. k_len-1``: (h, q_len, k_len), or None when the scheme adds none."""
        return None

    def score_term(self, q: Tensor, k: Tensor, offset: int = 0) -> Tensor | None:
        """A score term that depends on the (rotated) queries and/or the keys, added to q.k/sqrt(hd).

        q: (b, h, s, hd) new queries at positions ``offset .. offset+s-1``; k: (b, h, t, hd) every
        key, at ``0 .. t-1`` -> (b, h, s, t), already in the units of the scaled scores, or None.
        Attention still runs on ``F.scaled_dot_product_attention`` with it as a float ``attn_mask``.
        """
        return None

    def distance_scores(self, q: Tensor) -> Tensor | None:
        """The score term as a function of the distance d = i - j alone, when it has that form and is
        the same for every distance >= some W: (B', h, s', W + 1), column d for distance d < W and
        column W for all the farther keys (B' in {1, b}, s' in {1, s}), or None.

        q: (b, h, s, hd), the new (rotated) queries. A scheme that gives it lets attention keep the
        fused kernel in the backward pass too (:mod:`tokvec.model.fast.banded`); it must equal what
        :meth:`score_bias` plus :meth:`score_term` give (the tests check both against each other).
        """
        return None

    def distance_values(self) -> Tensor | None:
        """The value term as rows per distance, laid out like :meth:`distance_scores`: (W + 1, hd), or None."""
        return None

    adds_values: bool = False  # True when value_term() adds to the output (attention keeps the weights)

    def value_term(self, weights: Tensor, offset: int = 0) -> Tensor:
        """A term added to ``weights @ v``. weights: (b, h, s, t) after dropout -> (b, h, s, hd).

        Called only when ``adds_values`` is True; attention then computes the weights explicitly.
        """
        raise NotImplementedError(f"the {self.name!r} scheme adds no value term")

    def attention_bias(self, q_len: int, k_len: int, offset: int = 0) -> Tensor | None:
        """:meth:`score_bias` as a float mask for ``F.scaled_dot_product_attention``: (1, h, q_len, k_len)
        with the causal future at -inf, or None. Built once per shape when the bias is a constant.

        A bias below ``-NEGLIGIBLE_SCORE`` is set to -inf too: such a key's weight is at most
        e^-64 ~ 1.6e-28 of the query's own (unless its content score is 47 higher), far below
        float32's resolution (2^-24 ~ e^-16.6), and as an exact zero it keeps the softmax out of
        the denormal floats that ALiBi's long-distance penalties otherwise produce (each costing a
        slow path in the CPU: ALiBi's attention took 1.8x NoPE's time at s = 1024 before, 1.1x after).
        """
        bias = self.score_bias(q_len, k_len, offset)
        if bias is None:
            return None

        def make() -> Tensor:
            i = torch.arange(offset, offset + q_len, device=bias.device).unsqueeze(1)
            future = torch.arange(k_len, device=bias.device).unsqueeze(0) > i
            return bias.masked_fill(future | (bias < -NEGLIGIBLE_SCORE), float("-inf")).unsqueeze(0)

        if bias.requires_grad and torch.is_grad_enabled():
            return make()  # in the graph: never kept past this call
        key = ("attention_bias", q_len, k_len, offset, bias.device, bias.dtype)
        hit = self._memo(key, lambda: (bias, make()))
        if hit[0] is not bias:  # the bias itself was rebuilt (e.g. trained weights changed): rebuild
            hit = self.__dict__["_memo_store"][key] = (bias, make())
        return hit[1]

    # -- memo of position tensors -------------------------------------------------------------
    _memo_size: ClassVar[int] = 16

    def _memo(self, key: tuple, make: Callable[[], Tensor]) -> Tensor:
        """A tensor that is a pure function of ``key``, built once and reused (by every layer that
        shares this scheme, and by every step of the same length). Least recently used ones go.

        Only for tensors that do not depend on trained parameters: a tensor in an autograd graph
        must not outlive the backward pass that frees that graph.
        """
        memo = self.__dict__.get("_memo_store")
        if memo is None:
            memo = self.__dict__["_memo_store"] = OrderedDict()
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = make()
            if len(memo) > self._memo_size:
                memo.popitem(last=False)
        else:
            memo.move_to_end(key)
        return hit

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def options(cls) -> frozenset[str]:
        """The scheme's own options: its constructor's parameters beyond the model-wide CONTEXT."""
        params = inspect.signature(cls.__init__).parameters
        return frozenset(n for n, p in params.items() if n != "self" and p.kind is not p.VAR_KEYWORD) - CONTEXT

    @classmethod
    def from_config(cls, **config: Any) -> "PositionalEncoding":
        """Build from the model-wide context (d_model, n_heads, head_dim, max_len) plus scheme options.

        Context keys the scheme does not take are ignored; an option it does not take is an error.
        """
        options = cls.options()
        unknown = sorted(k for k in config if k not in options and k not in CONTEXT)
        if unknown:
            raise TokvecValueError(
                f"positional scheme {cls.name!r} takes no option {', '.join(map(repr, unknown))}; "
                f"its options are {', '.join(sorted(options)) or '(none)'}"
            )
        taken = set(inspect.signature(cls.__init__).parameters)
        return cls(**{k: v for k, v in config.items() if k in taken})

    def extra_repr(self) -> str:
        return f"acts_on={self.acts_on!r}"


def check_positions(positions: Tensor, batch: int, seq: int) -> Tensor:
    """Validate a positions tensor against x's (batch, seq); returns it as int64.

    positions: (seq,) shared by the batch, or (batch, seq). Negative positions are refused.
    """
    if not isinstance(positions, Tensor):
        positions = torch.as_tensor(positions)
    if positions.is_floating_point() or positions.dtype == torch.bool or positions.is_complex():
        raise TokvecTypeError(f"positions must be an integer tensor, got dtype {positions.dtype}")
    if positions.dim() == 1:
        ok = positions.shape[0] == seq
    elif positions.dim() == 2:
        ok = positions.shape[1] == seq and positions.shape[0] in (1, batch)
    else:
        ok = False
    if not ok:
        raise TokvecValueError(
            f"positions has shape {tuple(positions.shape)}; expected ({seq},) or ({batch}, {seq}) "
            f"to match the (batch, seq) = ({batch}, {seq}) input"
        )
    if positions.numel() and int(positions.min()) < 0:
        raise TokvecValueError(f"positions must be >= 0, got {int(positions.min())}")
    return positions.long()


def check_positive_int(name: str, value: Any) -> int:
    from .._checks import MAX_DIM

    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TokvecValueError(f"{name} must be a positive integer, got {value!r}")
    if value > MAX_DIM:
        raise TokvecValueError(f"{name} must be at most {MAX_DIM}, got {value}")
    return value


def check_offset(offset: Any) -> int:
    """The position of the first new query (the KV-cache length): an int >= 0."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise TokvecValueError(
            f"positions must be >= 0: got offset {offset!r} for the first query; "
            f"the offset is the number of cached tokens"
        )
    return offset


def head_dim_for(d_model: int, n_heads: int) -> int:
    """``d_model // n_heads``, refusing heads that do not divide d_model (naming both numbers and a
    head count that would). The one check of this rule, for config, attention, schemes and plots."""
    check_positive_int("d_model", d_model)
    check_positive_int("n_heads", n_heads)
    if d_model % n_heads:
        near = min((h for h in range(1, d_model + 1) if d_model % h == 0), key=lambda h: (abs(h - n_heads), h))
        raise TokvecValueError(
            f"n_heads ({n_heads}) must divide d_model ({d_model}) (try n_heads={near}); "
            f"d_model / n_heads = {d_model / n_heads:g} is not a whole head size"
        )
    return d_model // n_heads


def resolve_heads(
    scheme: str, d_model: int | None, n_heads: int | None, head_dim: int | None = None
) -> tuple[int, int]:
    """(n_heads, head_dim) for a scheme that acts per attention head, from whatever the model gave.

    Refuses a missing head count and heads that do not divide d_model, naming both numbers.
    """
    if n_heads is None:
        raise TokvecValueError(
            f"positional scheme {scheme!r} acts inside attention and needs n_heads; "
            f"pass n_heads= (the attention head count of the model)"
        )
    check_positive_int("n_heads", n_heads)
    if d_model is not None:
        whole = head_dim_for(d_model, n_heads)
        if head_dim is None:
            head_dim = whole
    if head_dim is None:
        raise TokvecValueError(f"positional scheme {scheme!r} needs d_model or head_dim")
    return n_heads, check_positive_int("head_dim", head_dim)
