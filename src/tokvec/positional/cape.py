"""CAPE: sinusoidal positions, augmented in training (Likhomanenko et al. 2021, "CAPE: Encoding Relative
Positions with Continuous Augmented Positional Embeddings", NeurIPS 2021, arXiv:2106.03143).

A model trained on positions 0..n-1 can memorise where each absolute position is; it then fails at
positions it never saw. CAPE keeps the sinusoid vectors of Vaswani et al. but, in training only,
feeds them continuous positions drawn afresh for every sequence of every batch:

    x'_i = λ · (x_i + Δ + ε_i)        Δ   ~ U[-global_shift, global_shift]          (one per sequence)
                                      ε_i ~ U[-local_shift, local_shift]            (one per token)
                                      ln λ ~ U[-ln global_scaling, ln global_scaling]  (one per sequence)

- global shift: the whole sequence moves, so no position is special (only distances are stable);
- local shift: each token jitters by less than half a step, so the order is kept but exact
  distances are not, and the model cannot key on them;
- global scaling: the sequence stretches or shrinks a little, as if it were read at another rate.

In eval mode no augmentation is applied: the vectors are exactly :class:`SinusoidalPositionalEncoding`'s.

Defaults (``global_shift=5``, ``local_shift=0.5``, ``global_scaling=1.03``) are the paper's settings
for text (its machine-translation experiments, positions not normalised), as the PyTorch
re-implementation by G. Cámbara (github.com/gcambara/cape, README "CAPE for text", written from the
paper's code) spells them: ``max_global_shift=5.0, max_local_shift=1.0, max_global_scaling=1.03``,
where its local shift is drawn from ``U[-max_local_shift/2, +max_local_shift/2]``, i.e. our 0.5.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import TokvecTypeError, TokvecValueError
from .base import check_positions
from .sinusoidal import SinusoidalPositionalEncoding, sinusoids


class CAPEDraw(NamedTuple):
    """One draw of CAPE's augmentation for a batch: shift (b, 1), local (b, s), scale (b, 1)."""

    shift: Tensor  # Δ per sequence
    local: Tensor  # ε per token
    scale: Tensor  # λ per sequence

    def apply(self, positions: Tensor) -> Tensor:
        """positions: (s,) or (b, s) -> λ · (positions + Δ + ε): (b, s), in the draw's dtype."""
        return self.scale * (positions.to(self.local.dtype) + self.shift + self.local)


def _check_bound(name: str, value, low: float, high: float, why: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise TokvecValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}; {why}")
    return float(value)


class CAPEPositionalEncoding(SinusoidalPositionalEncoding):
    """Sinusoidal vectors of randomly shifted, jittered and scaled positions in training; plain
    sinusoidal in eval. No parameters. See the module docstring for the formula and the defaults.

    ``generator``: a ``torch.Generator`` (on the CPU) for the draws, e.g. in tests; None (default)
    uses torch's global CPU generator, so ``torch.manual_seed`` and a resumed run's saved RNG state
    reproduce them, as they do dropout. Draws are made on the CPU and moved to the input's device.
    """

    name = "cape"
    acts_on = "input"

    def __init__(
        self,
        d_model: int,
        max_len: int = 5000,
        *,
        global_shift: float = 5.0,
        local_shift: float = 0.5,
        global_scaling: float = 1.03,
        base: float = 10000.0,
        layout: str = "interleaved",
    ):
        super().__init__(d_model, max_len, base=base, layout=layout)
        self.global_shift = _check_bound(
            "global_shift", global_shift, 0.0, math.inf, "it is the largest offset added to a whole sequence (0: none)"
        )
        self.local_shift = _check_bound(
            "local_shift", local_shift, 0.0, 0.5, "past half a step two tokens could swap places (0: no jitter)"
        )
        self.global_scaling = _check_bound(
            "global_scaling",
            global_scaling,
            1.0,
            math.inf,
            "positions are stretched by a factor in [1/global_scaling, global_scaling] (1: no scaling)",
        )
        self.generator: torch.Generator | None = None

    def draw(self, batch: int, seq: int, *, generator: torch.Generator | None = None) -> CAPEDraw:
        """A fresh augmentation for ``batch`` sequences of ``seq`` tokens, on the CPU in float64."""
        gen = generator if generator is not None else self.generator
        if gen is not None and not isinstance(gen, torch.Generator):
            raise TokvecTypeError(f"generator must be a torch.Generator or None, got {type(gen).__name__}")

        def uniform(shape: tuple[int, ...], bound: float) -> Tensor:  # U[-bound, bound]
            return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound

        log_scale = uniform((batch, 1), math.log(self.global_scaling))
        return CAPEDraw(
            shift=uniform((batch, 1), self.global_shift),
            local=uniform((batch, seq), self.local_shift),
            scale=log_scale.exp(),
        )

    def augment(self, positions: Tensor, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Augmented positions for a batch. positions: (s,) or (b, s) integer -> (b, s) float64 (CPU)."""
        seq = positions.shape[-1]
        return self.draw(batch, seq, generator=generator).apply(positions.cpu())

    def add_(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """Add position vectors to ``x`` in place. x: (b, s, d); positions: (s,) | (b, s).

        Training: vectors of augmented positions, drawn per sequence. Eval: exactly sinusoidal's.
        """
        if not self.training:
            return super().add_(x, positions)
        batch, seq = x.shape[0], x.shape[-2]
        base = torch.arange(seq) if positions is None else check_positions(positions, batch, seq)
        where = self.augment(base, batch)  # (b, s) float64
        if x.device.type == "mps":  # no float64 there; positions stay well inside float32's exact range
            where = where.float()
        pe = sinusoids(where.to(x.device, non_blocking=True), self.d_model, base=self.base, layout=self.layout)
        return x.add_(pe.to(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, global_shift={self.global_shift:g}, local_shift={self.local_shift:g}, "
            f"global_scaling={self.global_scaling:g}"
        )
