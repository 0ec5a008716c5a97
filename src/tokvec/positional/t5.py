"""T5 relative position bias (Raffel et al. 2020, §2.1; Mesh TensorFlow ``_relative_position_bucket``).

Each relative position j - i falls in one of ``num_buckets`` buckets, and each bucket holds one
learned scalar per head, added to the scores. Small distances get a bucket each; from
``max_exact = num_buckets / 2`` on (half of that when bidirectional), buckets widen
logarithmically up to ``max_distance``, and every distance beyond shares the last bucket, which
is why the bias, unlike a learned absolute table, runs at any length.

- bidirectional (the encoder): half the buckets for keys before the query, half for keys after.
- causal (``bidirectional=False``, the decoder, the default here): keys after the query share
  bucket 0 with the query itself (they are masked anyway).

The bucket ids are a pure function of (q_len, k_len, offset) and are built once per length; the
lookup of the learned values is redone per call while training (it is in the autograd graph) and
is kept with the ids when no gradient is wanted (generation).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import TokvecValueError
from .base import PositionalEncoding, check_offset, check_positive_int


def t5_bucket(
    relative_position: Tensor, *, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> Tensor:
    """Bucket id of each relative position (key - query), as in Mesh TF / Hugging Face T5. Any shape, int64.

    >>> t5_bucket(torch.tensor([-1, 0, 1]), bidirectional=True).tolist()
    [1, 0, 17]
    """
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    n = relative_position
    if bidirectional:
        num_buckets //= 2
        buckets += (n > 0).long() * num_buckets
        n = n.abs()
    else:
        n = (-n).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # log-spaced buckets from max_exact to max_distance; clamp n >= 1 to keep log() finite where unused
    large = (
        max_exact
        + (
            torch.log(n.clamp(min=1).float() / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).long()
    )
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, n, large)


class T5RelativePositionalEncoding(PositionalEncoding):
    """A learned (num_buckets, h) table of score biases, indexed by the bucket of j - i."""

    name = "t5"
    acts_on = "attention"
    has_score_bias = True

    def __init__(
        self,
        n_heads: int | None = None,
        *,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = False,
        std: float = 0.02,
    ) -> None:
        super().__init__()
        if n_heads is None:
            raise TokvecValueError(
                "positional scheme 't5' learns a bias per attention head and needs n_heads; "
                "pass n_heads= (the attention head count of the model)"
            )
        self.n_heads = check_positive_int("n_heads", n_heads)
        self.num_buckets = check_positive_int("num_buckets", num_buckets)
        self.max_distance = check_positive_int("max_distance", max_distance)
        exact = num_buckets // 2 if bidirectional else num_buckets
        if exact < 2 or max_distance <= exact // 2:
            raise TokvecValueError(
                f"t5 needs max_distance ({max_distance}) > {exact // 2} and at least "
                f"{4 if bidirectional else 2} buckets (got {num_buckets}) so log-spaced buckets exist"
            )
        self.bidirectional = bool(bidirectional)
        self.weight = nn.Parameter(torch.empty(num_buckets, n_heads))
        nn.init.normal_(self.weight, mean=0.0, std=std)

    def buckets(self, q_len: int, k_len: int, offset: int = 0, device=None) -> Tensor:
        """Bucket ids (q_len, k_len) for queries at ``offset + i`` and keys at ``j``; memoised."""
        check_offset(offset)

        def make() -> Tensor:
            i = torch.arange(offset, offset + q_len, device=device).unsqueeze(1)
            j = torch.arange(k_len, device=device).unsqueeze(0)
            return t5_bucket(
                j - i, bidirectional=self.bidirectional, num_buckets=self.num_buckets, max_distance=self.max_distance
            )

        return self._memo(("buckets", q_len, k_len, offset, device), make)

    def score_bias(self, q_len: int, k_len: int, offset: int = 0) -> Tensor:
        """(h, q_len, k_len): the learned bias of each (query, key) bucket."""
        w = self.weight
        ids = self.buckets(q_len, k_len, offset, w.device)
        if torch.is_grad_enabled() and w.requires_grad:
            return w.t()[:, ids]  # in the graph: looked up afresh, never kept past this call
        key = ("bias", q_len, k_len, offset, w.device, w.dtype, w.data_ptr(), w._version)
        return self._memo(key, lambda: w.detach().t()[:, ids])

    def distance_scores(self, q: Tensor) -> Tensor:
        """(1, h, 1, W + 1): the bias of distances 0 .. W (keys at or before the query), where W is the
        first distance in the last bucket (113 for the default 32 buckets up to 128): every distance
        from W on shares that bucket, so column W stands for them all."""
        w = self.weight
        ids = self._memo(("distance_buckets", w.device), lambda: self._distance_buckets(w.device))
        return w[ids].t().unsqueeze(0).unsqueeze(2)  # (1, h, 1, W + 1)

    def _distance_buckets(self, device) -> Tensor:
        """Bucket ids of distances 0 .. W, W the first distance whose bucket is the one of every farther key."""
        ids = t5_bucket(
            -torch.arange(self.max_distance + 1, device=device),
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        first_far = int((ids != ids[-1]).nonzero().max()) + 1 if bool((ids != ids[-1]).any()) else 1
        return ids[: first_far + 1]

    def extra_repr(self) -> str:
        return (
            f"n_heads={self.n_heads}, num_buckets={self.num_buckets}, max_distance={self.max_distance}, "
            f"bidirectional={self.bidirectional}"
        )
