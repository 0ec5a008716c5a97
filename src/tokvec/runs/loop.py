"""One training loop for everything tokvec trains: the language model and the sequence classifier.

A :class:`Task` supplies what differs between them: the batches, the loss of a batch, the
evaluation and what a checkpoint writes. :class:`TrainingLoop` owns the rest, the same for both::

    for step in start_step .. max_steps - 1:
        lr = schedule(step); reseed dropout from (seed, step)
        for micro in range(grad_accum):            # DDP: gradients averaged on the last one only
            loss = task.loss(forward, task.batch(step, micro)) / grad_accum; backward (fp16: scaled)
        clip the gradient norm; optimizer step (fp16: through the scaler)
        every log_interval steps: read the pending losses back (one device sync), stop on NaN/inf
        every eval_interval steps: task.evaluate(); every checkpoint_interval: task.save(...)
        progress(step, max_steps, info); Ctrl-C: finish the step, save, raise KeyboardInterrupt

The per-step loss and gradient norm stay on the device until a log step reads them back together,
so the hot loop never waits for the device; a non-finite value is still caught before any
checkpoint could hold the weights it touched.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Optional, Protocol

import torch
from torch import Tensor

from ..device import Precision
from ..errors import TokvecValueError
from . import distributed as dist_
from .checkpoint import all_finite

Progress = Callable[[int, int, dict], None]


class TrainingDivergedError(TokvecValueError):
    """The loss (or the gradient norm) became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message: str, *, step: int, last_checkpoint_step: int | None) -> None:
        super().__init__(message)
        self.step = step
        self.last_checkpoint_step = last_checkpoint_step


@dataclass
class LoopSettings:
    """How the loop steps: the schedule and the intervals (a task's config maps onto these)."""

    max_steps: int
    lr_at: Callable[[int], float]  # learning rate of optimizer step ``step`` (0-based)
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    log_interval: int = 10  # read the loss back (a device sync) every N steps
    eval_interval: Optional[int] = None  # None: evaluate after the last step only
    checkpoint_interval: Optional[int] = None  # None: at every eval
    dropout_seed: Optional[int] = None  # reseed torch from (seed, step) before each step (exact resume)
    lr_hint: str = ""  # the divergence error's advice: "Lower --lr (now 0.001) or ..."


@dataclass
class Trainee:
    """The model being trained and what steps it.

    ``model`` is the plain module (its weights are saved), ``wrapped`` its DDP/FSDP wrapper (or the
    module itself), ``forward`` what computes the loss (``wrapped``, possibly ``torch.compile``d)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    precision: Precision = field(default_factory=lambda: Precision("fp32"))
    ctx: dist_.DistContext = field(default_factory=dist_.DistContext)
    wrapped: Optional[torch.nn.Module] = None
    forward: Optional[Callable] = None
    scaler: Any = None  # torch.amp.GradScaler under fp16, else None

    def __post_init__(self) -> None:
        self.wrapped = self.model if self.wrapped is None else self.wrapped
        self.forward = self.wrapped if self.forward is None else self.forward

    def autocast(self) -> ContextManager:
        return self.precision.autocast(self.ctx.device)


class Task(Protocol):
    """What a kind of training supplies to :class:`TrainingLoop`."""

    throughput_key: str  # the progress info key of the speed, e.g. "tokens_per_s"
    items_per_step: int  # what that speed counts, per optimizer step over all processes

    def batch(self, step: int, micro: int) -> Any:
        """The inputs of micro-batch ``micro`` of optimizer step ``step`` (a function of both: exact resume)."""

    def loss(self, forward: Callable, batch: Any) -> Tensor:
        """The scalar training loss of ``batch``, computed by ``forward`` (under the loop's autocast)."""

    def evaluate(self, trainee: Trainee) -> dict[str, float]:
        """Eval metrics by name (e.g. train_loss, val_loss); every value must be finite."""

    def record(self, step: int, values: Mapping[str, float], info: Mapping[str, Any]) -> None:
        """Log an eval's ``values`` (with the loop's ``info``: lr, speed, elapsed_s and ``loss``, the
        step's training loss), e.g. to metrics.jsonl."""

    def save(self, step: int, weights: Any, optimizer_state: Any, info: Mapping[str, Any]) -> None:
        """Commit a checkpoint (rank 0 only): ``weights`` a module or a full float32 state dict,
        ``optimizer_state`` the optimizer or its full state dict; ``info``: ``elapsed_s``, ``loss``
        (the step's training loss, None when no step ran)."""


@dataclass
class LoopResult:
    step: int
    losses: list[float]  # this call's per-step training losses
    evaluated: dict[str, float]  # the last eval's values ({} when none ran)
    throughput: float
    elapsed_s: float


class TrainingLoop:
    """Run ``task`` on ``trainee`` from ``start_step`` to ``settings.max_steps`` (see the module doc).

    ``resumed``: the run continues a checkpoint taken at ``start_step`` (so that step counts as saved).
    ``progress(step, max_steps, info)``: rank 0 only; ``info`` holds ``lr``, the speed, ``loss`` at log
    steps and the eval values at eval steps."""

    def __init__(
        self,
        task: Task,
        trainee: Trainee,
        settings: LoopSettings,
        *,
        run_dir: str | Path,
        start_step: int = 0,
        resumed: bool = False,
        elapsed_before: float = 0.0,
        progress: Progress | None = None,
    ) -> None:
        self.task, self.trainee, self.settings = task, trainee, settings
        self.run_dir, self.progress = Path(run_dir), progress
        self.start_step = self.step = start_step
        self.last_ckpt: int | None = start_step if resumed else None
        self.elapsed_before = elapsed_before
        self.losses: list[float] = []
        self.evaluated: dict[str, float] = {}
        self.throughput = 0.0
        self.train_time, self.t_start = 0.0, time.perf_counter()
        # per-step (step, loss, grad norm), on the device until a log step reads them back in one go
        self.pending: list[tuple[int, Tensor, Tensor]] = []

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> LoopResult:
        s = self.settings
        self.trainee.model.train()
        with _InterruptFlag() as interrupt:
            while self.step < s.max_steps:
                info = self.train_step()
                if self.step % self.checkpoint_every == 0 or self.step == s.max_steps:
                    self.checkpoint()
                self.report(info, interrupt)
        if self.last_ckpt != self.step:
            self.checkpoint()  # max_steps already reached on resume: nothing ran, the checkpoint stands
        self.drain()
        return LoopResult(
            step=self.step,
            losses=self.losses,
            evaluated=self.evaluated,
            throughput=self.throughput,
            elapsed_s=self.elapsed(),
        )

    @property
    def eval_every(self) -> int:
        return self.settings.eval_interval or self.settings.max_steps

    @property
    def checkpoint_every(self) -> int:
        return self.settings.checkpoint_interval or self.eval_every

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t_start

    def train_step(self) -> dict[str, Any]:
        """One optimizer step; returns the progress info (``loss`` at log steps, eval values at evals)."""
        s, t0 = self.settings, time.perf_counter()
        lr = s.lr_at(self.step)
        for group in self.trainee.optimizer.param_groups:
            group["lr"] = lr
        if s.dropout_seed is not None:
            torch.manual_seed(s.dropout_seed * 7_919 + self.step)  # dropout: a function of (seed, step)
        self.trainee.optimizer.zero_grad(set_to_none=True)
        loss = self.accumulate()
        norm = self.clip_and_update()
        self.step += 1
        self.pending.append((self.step, loss, norm.detach()))
        evaluating = self.step % self.eval_every == 0 or self.step == s.max_steps
        info: dict[str, Any] = {"lr": lr}
        if self.step % s.log_interval == 0 or evaluating or self.step % self.checkpoint_every == 0:
            self.drain()
            info["loss"] = self.losses[-1]
        self.train_time += time.perf_counter() - t0
        self.throughput = self.task.items_per_step * (self.step - self.start_step) / max(self.train_time, 1e-9)
        info[self.task.throughput_key] = self.throughput
        if evaluating:
            self.evaluate(info)
        return info

    def accumulate(self) -> Tensor:
        """Forward and backward over the step's micro-batches; the mean loss, still on the device."""
        t, accum = self.trainee, self.settings.grad_accum
        loss_sum: Tensor | float = 0.0
        for micro in range(accum):
            batch = self.task.batch(self.step, micro)
            # DDP: average gradients across ranks only on the last micro-batch of the step
            sync = nullcontext() if micro == accum - 1 or not hasattr(t.wrapped, "no_sync") else t.wrapped.no_sync()
            with sync, t.autocast():
                loss = self.task.loss(t.forward, batch)
            with sync:
                scaled = loss / accum
                (t.scaler.scale(scaled) if t.scaler is not None else scaled).backward()
            loss_sum = loss_sum + loss.detach() / accum  # in the loss's own dtype
        return loss_sum  # type: ignore[return-value]

    def clip_and_update(self) -> Tensor:
        """Clip the gradients (fp16: the unscaled ones), step the optimizer; the gradient norm (a tensor)."""
        t, clip = self.trainee, self.settings.grad_clip
        if t.scaler is not None:
            t.scaler.unscale_(t.optimizer)  # clip the true gradients
        norm = (
            torch.nn.utils.clip_grad_norm_(t.wrapped.parameters(), clip)
            if clip > 0
            else torch.zeros((), device=t.ctx.device)
        )
        if hasattr(norm, "full_tensor"):  # FSDP: a DTensor
            norm = norm.full_tensor()
        if t.scaler is not None:
            t.scaler.step(t.optimizer)
            t.scaler.update()
        else:
            t.optimizer.step()
        return norm

    # -- read-back and divergence ---------------------------------------------------------------
    def drain(self) -> None:
        """Read back the pending steps' losses and norms (one sync); stop at the first non-finite one."""
        if not self.pending:
            return
        ctx = self.trainee.ctx
        values = torch.stack([torch.stack([loss.double(), norm.double()]) for _, loss, norm in self.pending]).tolist()
        steps = [s for s, _, _ in self.pending]
        self.pending.clear()
        if ctx.distributed:  # every rank judges the same mean losses: all stop together or none
            summed = dist_.all_reduce_sum([loss for loss, _ in values], ctx)
            values = [(loss / ctx.world_size, norm) for loss, (_, norm) in zip(summed, values)]
        for done, (loss_value, norm_value) in zip(steps, values):
            # under fp16 an infinite norm is the scaler's business (it skipped that step), not divergence
            bad_norm = not math.isfinite(norm_value) and self.trainee.scaler is None
            if not math.isfinite(loss_value) or bad_norm:
                what = f"loss is {loss_value}" if not math.isfinite(loss_value) else f"gradient norm is {norm_value}"
                raise self.diverged(what, done)
            self.losses.append(loss_value)

    def diverged(self, what: str, step: int) -> TrainingDivergedError:
        kept = (
            f"the last good checkpoint (step {self.last_ckpt}) in {self.run_dir} is kept"
            if self.last_ckpt is not None
            else "no checkpoint had been saved yet"
        )
        hint = self.settings.lr_hint or "Lower the learning rate or check the data"
        return TrainingDivergedError(
            f"{what} at step {step}; training stopped and {kept}. {hint}",
            step=step,
            last_checkpoint_step=self.last_ckpt,
        )

    # -- eval, checkpoint, progress -------------------------------------------------------------
    def evaluate(self, info: dict[str, Any]) -> None:
        values = self.task.evaluate(self.trainee)
        if not all(math.isfinite(v) for v in values.values()):
            raise self.diverged("eval " + ", ".join(f"{k} is {v}" for k, v in values.items()), self.step)
        self.task.record(
            self.step,
            values,
            {
                "lr": info["lr"],
                self.task.throughput_key: self.throughput,
                "elapsed_s": self.elapsed(),
                "loss": self.losses[-1] if self.losses else None,
            },
        )
        self.evaluated = dict(values)
        info.update(values)

    def checkpoint(self) -> None:
        """Save the step's weights (and optimizer state) through the task; never weights a NaN touched."""
        t, step = self.trainee, self.step
        self.drain()  # never checkpoint weights that a non-finite step has touched
        bad = first_nonfinite(t.model)  # a checkpoint of garbage would pass for the last good one
        if t.ctx.distributed:
            bad = (
                bad
                if dist_.all_reduce_sum([float(bad is not None)], t.ctx)[0] == 0
                else (bad or "another rank's shard")
            )
        if bad is not None:
            raise self.diverged(f"weight {bad} is not finite (NaN or infinite)", step)
        # under FSDP gathering the shards is collective: every rank takes part, rank 0 writes
        weights = dist_.full_state_dict(t.wrapped, t.ctx) if t.ctx.strategy == "fsdp" else t.model
        if t.precision.param_dtype != torch.float32:  # a run's weights are saved as float32, whatever it trains in
            weights = {
                k: v.float() if v.is_floating_point() else v
                for k, v in (weights if isinstance(weights, Mapping) else t.model.state_dict()).items()
            }
        opt_state = dist_.full_optimizer_state(t.optimizer, t.ctx) if t.ctx.strategy == "fsdp" else t.optimizer
        if t.ctx.is_main:
            self.task.save(
                step,
                weights,
                opt_state,
                {"elapsed_s": self.elapsed(), "loss": self.losses[-1] if self.losses else None},
            )
        dist_.barrier(t.ctx)  # no rank runs ahead of a checkpoint that may yet fail
        self.last_ckpt = step

    def report(self, info: dict[str, Any], interrupt: "_InterruptFlag") -> None:
        """Call ``progress``; on Ctrl-C (or a KeyboardInterrupt from ``progress``) save and stop."""
        ctx, step = self.trainee.ctx, self.step
        if self.progress is not None and ctx.is_main:
            try:
                self.progress(step, self.settings.max_steps, info)
            except KeyboardInterrupt:  # raised by the callback (or Ctrl-C outside the main thread)
                interrupt.raised = True
        if ctx.distributed and "loss" in info:  # one rank's Ctrl-C stops them all at the same step
            interrupt.raised = dist_.all_reduce_sum([float(interrupt.raised)], ctx)[0] > 0
        if interrupt.raised and (not ctx.distributed or "loss" in info):
            if self.last_ckpt != step:
                self.checkpoint()
            raise KeyboardInterrupt(f"interrupted after step {step}; checkpoint saved in {self.run_dir}")


def warmup_cosine(step: int, *, lr: float, min_lr: float, warmup: int, max_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): nanoGPT's ``get_lr``, a linear warmup to ``lr``
    over ``warmup`` steps, then a cosine to ``min_lr`` at ``max_steps``; ``min_lr`` after it.

    With ``warmup=0, min_lr=0``: ``lr * (1 + cos(pi * step / max_steps)) / 2`` (step 0 -> lr)."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    if step >= max_steps:
        return min_lr
    ratio = (step - warmup) / max(1, max_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


class _InterruptFlag:
    """Turns the first Ctrl-C into a flag the loop checks between steps (so the checkpoint holds a
    whole step); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.raised = False
        self._old = None

    def __enter__(self) -> "_InterruptFlag":
        # not from a worker thread (signal() would fail), and not when SIGINT is ignored (nohup, `&`)
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        ):
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def first_nonfinite(model: torch.nn.Module) -> str | None:
    """Name of the first parameter holding a NaN or an infinity (this rank's shard under FSDP), else None."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            local = p.to_local() if hasattr(p, "to_local") else p
            if not all_finite(local):
                return name
    return None


__all__ = [
    "LoopSettings",
    "LoopResult",
    "Task",
    "Trainee",
    "TrainingLoop",
    "TrainingDivergedError",
    "first_nonfinite",
    "warmup_cosine",
]
