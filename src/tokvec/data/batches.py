"""Token ids -> (batch, seq) context windows: a train/val split by position, random windows for
training, contiguous windows for evaluation.

A window of ``context`` tokens needs ``context + 1`` ids (inputs and the next-token targets)::

    ids  = [a b c d e f g]          context = 3, start = 2
    x    =     [c d e]              ids[2:5]
    y    =       [d e f]            ids[3:6]

The split is by position, never by shuffling tokens: the validation set is one contiguous block of
the corpus (where it starts is fixed by the seed, or at the end as nanoGPT does), so no training
window overlaps it. Batches are a pure function of ``(seed, step)``: resuming at step ``n`` draws
exactly the windows an uninterrupted run would have drawn.

Shape legend: b = batch size, s = context (sequence) length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import TokvecValueError

SPLITS = ("seeded", "tail")


@dataclass(frozen=True)
class Split:
    """Where train and val lie in the corpus. ``train`` is one or two segments (before and after val)."""

    train: tuple[np.ndarray, ...]
    val: np.ndarray
    val_start: int


def min_corpus_tokens(context: int, val_fraction: float) -> int:
    """Fewest ids a corpus needs so that train and val each hold one window of ``context`` tokens."""
    n = 2 * (context + 1)
    while n - max(math.ceil(n * val_fraction), context + 1) < context + 1:
        n += 1
    return n


def split_by_position(
    ids: np.ndarray, *, context: int, val_fraction: float = 0.1, seed: int = 0, mode: str = "seeded"
) -> Split:
    """Cut ``ids`` (n,) into a contiguous val block and the train segment(s) around it.

    ``mode="seeded"``: the block starts at a position drawn from ``seed``; ``mode="tail"``: the block
    is the last ``val_fraction`` of the corpus (nanoGPT's split). The block holds at least one window.

    >>> s = split_by_position(np.arange(100), context=4, val_fraction=0.1, mode="tail")
    >>> (len(s.train[0]), s.val[0], len(s.val))
    (90, 90, 10)
    """
    if mode not in SPLITS:
        raise TokvecValueError(f"unknown split mode {mode!r}; use one of {', '.join(SPLITS)}")
    if not 0.0 < val_fraction < 1.0:
        raise TokvecValueError(f"val_fraction {val_fraction} must be in (0, 1), e.g. 0.1")
    if context < 1:
        raise TokvecValueError(f"context {context} must be >= 1")
    n = len(ids)
    need = min_corpus_tokens(context, val_fraction)
    if n < need:
        raise TokvecValueError(
            f"corpus is {n} tokens long; context {context} needs at least {need} tokens "
            f"(one window of {context + 1} for training and one for validation); "
            f"use a longer corpus or a smaller --context"
        )
    m = max(math.ceil(n * val_fraction), context + 1)
    if mode == "tail":
        start = n - m
    else:
        # starts that leave a whole window on at least one side; drawn from the seed alone
        rng = np.random.default_rng(seed)
        start = int(rng.integers(0, n - m + 1))
        if start < context + 1 and n - (start + m) < context + 1:
            start = n - m
    train = tuple(seg for seg in (ids[:start], ids[start + m :]) if len(seg) >= context + 1)
    return Split(train=train, val=ids[start : start + m], val_start=start)


def _stack(segment: np.ndarray, starts: Sequence[int], context: int) -> tuple[Tensor, Tensor]:
    rows = np.stack([np.asarray(segment[i : i + context + 1]) for i in starts]).astype(np.int64)
    t = torch.from_numpy(rows)
    return t[:, :-1], t[:, 1:]  # x: (b, s), y: (b, s)


def batch_generator(seed: int, step: int, micro: int = 0) -> torch.Generator:
    """The RNG of one micro-batch: a function of (seed, step, micro) only, so resume is exact."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + micro)


def random_batch(
    segments: Sequence[np.ndarray],
    *,
    batch_size: int,
    context: int,
    generator: torch.Generator,
    shard: tuple[int, int] = (0, 1),
) -> tuple[Tensor, Tensor]:
    """``batch_size`` windows at uniformly random starts across ``segments``.

    ``shard=(rank, world_size)``: the generator draws the *global* batch of ``batch_size x
    world_size`` starts (the same on every rank) and only rank's slice of it is read, so N processes
    together see exactly the windows one process with the global batch would.
    Returns x: (b, s) and y: (b, s) int64, y being x shifted by one token.
    """
    rank, world = shard
    counts = np.array([max(len(s) - context, 0) for s in segments], dtype=np.int64)  # valid starts
    total = int(counts.sum())
    if total == 0:
        raise TokvecValueError(f"no training window of {context + 1} tokens fits; use a smaller context")
    flat = torch.randint(0, total, (batch_size * world,), generator=generator).numpy()
    flat = flat[rank * batch_size : (rank + 1) * batch_size]
    bounds = np.cumsum(counts)
    which = np.searchsorted(bounds, flat, side="right")
    offsets = flat - (bounds - counts)[which]
    xs, ys = [], []
    for seg_index, start in zip(which, offsets):
        x, y = _stack(segments[seg_index], [int(start)], context)
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def eval_batches(
    segments: Sequence[np.ndarray],
    *,
    batch_size: int,
    context: int,
    max_batches: int | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Tensor, Tensor]]:
    """Non-overlapping contiguous windows over ``segments``, in order, ``batch_size`` at a time.

    With ``max_batches``, an evenly spaced subset of the windows (the same every call) is used, so
    the estimate covers the whole split. Yields x: (b, s), y: (b, s); the last batch may be smaller.
    ``shard=(rank, world_size)``: this rank's every world_size-th window of the subset that one
    process with a batch of ``batch_size x world_size`` would use.
    """
    windows = [(k, i) for k, seg in enumerate(segments) for i in range(0, len(seg) - context, context)]
    wanted = None if max_batches is None else max_batches * batch_size * shard[1]  # over all ranks
    if wanted is not None and len(windows) > wanted:
        keep = np.linspace(0, len(windows) - 1, wanted).round().astype(int)
        windows = [windows[j] for j in keep]
    windows = windows[shard[0] :: shard[1]]
    for b in range(0, len(windows), batch_size):
        chunk = windows[b : b + batch_size]
        xs, ys = zip(*(_stack(segments[k], [i], context) for k, i in chunk))
        yield torch.cat(xs), torch.cat(ys)
