"""Train a GPT language model on any text: one config in, a run directory out.

    >>> from tokvec.runs.train import TrainConfig, train
    >>> result = train(TrainConfig(corpus="novel.txt", tokenizer="char", preset="tiny", out="runs/novel"))
    >>> result.val_loss, result.tokens_per_s

The loop is nanoGPT's: AdamW (fused when the build has it), linear warmup then cosine decay to
``min_lr``, gradient clipping, gradient accumulation, an eval of train and val loss every
``eval_interval`` steps (logged to metrics.jsonl), a crash-safe checkpoint every
``checkpoint_interval`` steps. Batches and dropout are seeded from ``(seed, step)``, so a run is
deterministic on the CPU and ``resume`` continues the exact loss curve of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from ..corpus import corpus_files
from ..data.batches import SPLITS, batch_generator, eval_batches, random_batch, split_by_position
from ..data.tokenfile import load_token_file, write_token_file
from ..errors import TokvecValueError
from ..tokenizers import build_tokenizer
from . import checkpoint as ckpt
from . import distributed as dist_

# nanoGPT's finetune_shakespeare.py: lr 3e-5, no decay (min_lr = lr); a short warmup so that the first
# steps' Adam moments (estimated from one batch) cannot knock the pretrained weights far off.
FINETUNE_DEFAULTS: dict[str, Any] = dict(lr=3e-5, min_lr=3e-5, warmup_steps=10, max_steps=200, eval_interval=50)

# Fields that may change when a run is resumed; any other difference is an error.
RESUMABLE = ("max_steps", "eval_interval", "eval_batches", "checkpoint_interval", "compile", "bf16",
             "threads", "out", "resume", "strategy", "backend", "dist_timeout_s")
TOKENS_FILE = "tokens.bin"  # the corpus as token ids (+ tokens.bin.json), written by rank 0, memory-mapped
_MODEL_FLAGS = {"positional": "positional", "d_model": "d_model", "n_layers": "n_layers",
                "n_heads": "n_heads", "context_length": "context_length", "d_ff": "d_ff", "dropout": "dropout",
                "norm": "norm", "activation": "activation"}


class TrainingDivergedError(TokvecValueError):
    """The loss (or the gradient norm) became NaN or infinite; the last good checkpoint is kept."""

    def __init__(self, message: str, *, step: int, last_checkpoint_step: int | None) -> None:
        super().__init__(message)
        self.step = step
        self.last_checkpoint_step = last_checkpoint_step


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``None`` model fields take the preset's value."""

    corpus: Optional[str] = None          # file or directory; None: the Python standard library's source
    encoding: str = "utf-8"
    tokenizer: str = "char"               # char | word | bpe:N | path of a saved tokenizer
    preset: str = "tiny"
    positional: Optional[str] = None
    d_model: Optional[int] = None
    n_layers: Optional[int] = None
    n_heads: Optional[int] = None
    context_length: Optional[int] = None
    d_ff: Optional[int] = None
    dropout: Optional[float] = None
    norm: Optional[str] = None            # layernorm | rmsnorm
    activation: Optional[str] = None      # gelu | swiglu
    model_options: dict = field(default_factory=dict)  # any other ModelConfig field (norm, activation, ...)
    max_steps: int = 2000
    batch_size: int = 12
    grad_accum: int = 1                   # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr: Optional[float] = None        # end of the cosine; None: lr / 10 (nanoGPT)
    warmup_steps: Optional[int] = None    # None: min(100, max_steps // 10)
    weight_decay: float = 0.1             # on matrices and embeddings only
    beta1: float = 0.9
    beta2: float = 0.99                   # nanoGPT's choice for small char models
    grad_clip: float = 1.0                # 0 disables clipping
    eval_interval: int = 250
    eval_batches: int = 20                # batches of contiguous windows per split per eval
    checkpoint_interval: Optional[int] = None  # None: every eval
    val_fraction: float = 0.1
    val_split: str = "seeded"             # seeded: val block placed by the seed; tail: last val_fraction
    seed: int = 1337
    compile: bool = False
    bf16: bool = False
    threads: Optional[int] = None         # torch intra-op threads during the run; None: torch's default
    out: str = "runs/tokvec"
    resume: bool = False                  # continue the checkpoint in ``out``
    strategy: str = "auto"                # several processes (torchrun): auto = ddp; or fsdp, none
    backend: str = "auto"                 # auto = nccl on GPUs, gloo on CPUs
    dist_timeout_s: float = 300.0         # a collective waiting longer for a dead peer fails the job
    init_from: Optional[str] = None       # fine-tune: a run directory or a Hugging Face model directory
    init_embeddings: Optional[str] = None  # GloVe/word2vec/fastText file: token rows start from its vectors

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise TokvecValueError(f"unknown train config keys {unknown}; known: {', '.join(sorted(names))}")
        return cls(**data)

    @classmethod
    def finetune(cls, init_from: str, **overrides: Any) -> "TrainConfig":
        """A fine-tuning run of ``init_from`` (a run or HF directory) with :data:`FINETUNE_DEFAULTS`
        (nanoGPT's finetune_shakespeare recipe: a small constant lr after a short warmup), then ``overrides``.

        The architecture, weights and tokenizer come from ``init_from``; the model flags are refused."""
        return cls(**{**FINETUNE_DEFAULTS, **overrides, "init_from": str(init_from)})

    @classmethod
    def for_resume(cls, run_dir: str, **overrides: Any) -> "TrainConfig":
        """The saved config of ``run_dir`` with ``overrides`` applied (flags given on the command line)."""
        saved = ckpt.read_run_config(run_dir)
        # how a run is launched (processes, strategy) is not part of it: a DDP run resumes in one process
        launch = {"strategy": "auto", "backend": "auto"}
        return cls.from_dict({**saved["train"], **launch, **overrides, "out": str(run_dir), "resume": True})

    def validate(self) -> "TrainConfig":
        """Collect every problem, then raise once naming each field, its value and the limit."""
        problems = []
        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} {value!r} must be an integer >= 1")
        if self.checkpoint_interval is not None and self.checkpoint_interval < 1:
            problems.append(f"checkpoint_interval {self.checkpoint_interval} must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr {self.lr} must be a positive number, e.g. 1e-3")
        if self.min_lr is not None and not 0 <= self.min_lr <= self.lr:
            problems.append(f"min_lr {self.min_lr} must be in [0, lr={self.lr}]")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warmup_steps {self.warmup_steps} must be >= 0")
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction {self.val_fraction} must be in (0, 1), e.g. 0.1")
        if self.val_split not in SPLITS:
            problems.append(f"val_split {self.val_split!r} must be one of {', '.join(SPLITS)}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads {self.threads} must be >= 1")
        if self.grad_clip < 0:
            problems.append(f"grad_clip {self.grad_clip} must be >= 0 (0 disables clipping)")
        if self.init_from is not None:
            changed = [f"{k}={getattr(self, k)!r}" for k in _MODEL_FLAGS if k != "dropout" and getattr(self, k) is not None]
            changed += [f"{k}={v!r}" for k, v in self.model_options.items() if k != "dropout"]
            changed += [f"{k}={getattr(self, k)!r}" for k, default in (("preset", "tiny"), ("tokenizer", "char"))
                        if getattr(self, k) != default]
            if self.init_embeddings:
                changed.append(f"init_embeddings={self.init_embeddings!r}")
            if changed:
                problems.append(f"init_from {self.init_from} fixes the architecture and the tokenizer, so "
                                f"{', '.join(changed)} cannot apply; drop those flags (only dropout may change)")
        if problems:
            raise TokvecValueError("bad training config: " + "; ".join(problems))
        return self

    def model_config(self, vocab_size: int):
        """The ModelConfig of this run: the preset, then the explicit fields, then ``model_options``."""
        from ..model.config import ModelConfig

        overrides = {k: getattr(self, k) for k in _MODEL_FLAGS if getattr(self, k) is not None}
        return ModelConfig.preset(self.preset, **{**overrides, **self.model_options, "vocab_size": vocab_size})

    @property
    def effective_warmup(self) -> int:
        return min(100, self.max_steps // 10) if self.warmup_steps is None else self.warmup_steps

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based): linear warmup, cosine to min_lr at max_steps."""
        warmup = self.effective_warmup
        min_lr = self.lr / 10 if self.min_lr is None else self.min_lr
        if step < warmup:
            return self.lr * (step + 1) / (warmup + 1)
        if step >= self.max_steps:
            return min_lr
        ratio = (step - warmup) / max(1, self.max_steps - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.lr - min_lr)


@dataclass
class TrainResult:
    """What a run did. ``losses`` are this call's per-step training losses (step start_step + 1 onwards)."""

    run_dir: Path
    step: int
    start_step: int
    train_loss: Optional[float]
    val_loss: Optional[float]
    tokens_per_s: float
    elapsed_s: float
    losses: list[float]
    metrics: list[dict]
    model: torch.nn.Module
    tokenizer: Any
    fused_adamw: bool
    embedding_coverage: Any = None  # with init_embeddings: a tokvec.embedding.Coverage


def make_optimizer(model: torch.nn.Module, config: TrainConfig, *, allow_fused: bool = True
                   ) -> tuple[torch.optim.AdamW, bool]:
    """AdamW with weight decay on 2-D tensors (matrices, embeddings) only; fused when available
    (and allowed: FSDP's sharded parameters take the plain implementation)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kwargs = dict(lr=config.lr, betas=(config.beta1, config.beta2))
    if allow_fused:
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs), True
        except (RuntimeError, TypeError):
            pass
    return torch.optim.AdamW(groups, **kwargs), False


def _ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids).tobytes()).hexdigest()[:16]


def _resume_differences(saved: Mapping, config: TrainConfig, model_config: Mapping) -> list[str]:
    diffs = []
    for key, value in config.to_dict().items():
        if key in RESUMABLE or key in _MODEL_FLAGS or key in ("preset", "model_options") or key not in saved["train"]:
            continue
        if saved["train"][key] != value:
            diffs.append(f"{key}: checkpoint {saved['train'][key]!r}, now {value!r}")
    from ..model.config import ModelConfig

    saved_model = ModelConfig.from_dict(saved["model"]).to_dict()  # fields added since then at their defaults
    for key, value in model_config.items():
        if saved_model.get(key) != value:
            diffs.append(f"model {key}: checkpoint {saved_model.get(key)!r}, now {value!r}")
    return diffs


class _InterruptFlag:
    """Turns the first Ctrl-C into a flag the loop checks between steps (so the checkpoint holds a
    whole step); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.raised = False
        self._old = None

    def __enter__(self) -> "_InterruptFlag":
        # not from a worker thread (signal() would fail), and not when SIGINT is ignored (nohup, `&`)
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


@torch.no_grad()
def evaluate(model: torch.nn.Module, segments, *, batch_size: int, context: int, max_batches: int,
             autocast=nullcontext, ctx: dist_.DistContext = dist_.DistContext()) -> float:
    """Mean next-token loss over contiguous windows of ``segments`` (token-weighted).

    Under several processes each rank scores its share of the same windows and the sums are added
    up, so the result is the mean over all of them, equal on every rank."""
    was_training = model.training
    model.eval()
    total, count, batches = 0.0, 0, 0
    x = torch.zeros(1, context, dtype=torch.long)
    for x, y in eval_batches(segments, batch_size=batch_size, context=context, max_batches=max_batches,
                             shard=(ctx.rank, ctx.world_size)):
        with autocast():
            _, loss = model(x.to(ctx.device), y.to(ctx.device))
        total += float(loss) * y.numel()
        count += y.numel()
        batches += 1
    if ctx.strategy == "fsdp":  # every FSDP forward is collective: a rank with fewer windows runs idle ones
        for _ in range(dist_.all_reduce_max(batches, ctx) - batches):
            with autocast():
                model(x[:1].to(ctx.device))
    model.train(was_training)
    total, count = dist_.all_reduce_sum([total, count], ctx)
    return total / max(count, 1)


def train(config: TrainConfig, *, progress: Callable[[int, int, dict], None] | None = None) -> TrainResult:
    """Train (or resume) the run ``config`` describes; checkpoints and metrics go to ``config.out``.

    ``progress(step, max_steps, info)`` is called after every optimizer step; ``info`` holds
    ``loss``, ``lr``, ``tokens_per_s`` and, after an eval, ``train_loss`` and ``val_loss``.
    Ctrl-C finishes the current step, saves a checkpoint, then raises KeyboardInterrupt.

    Launched by ``torchrun`` (WORLD_SIZE > 1) it trains data-parallel (``config.strategy``: ddp or
    fsdp): only rank 0 writes files and calls ``progress``; see :mod:`tokvec.runs.distributed`.
    """
    config.validate()
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    ctx = dist_.init_distributed(config.strategy, config.backend, timeout_s=config.dist_timeout_s)
    try:
        with dist_.collective_errors(ctx, config.dist_timeout_s):
            return _train(config, progress, ctx)
    finally:
        torch.set_num_threads(threads)
        dist_.shutdown(ctx)


def init_token_embeddings(model, tokenizer, path: str, *, seed: int = 0):
    """Copy pretrained word vectors into ``model``'s token table (rows the file lacks: random, with
    the file's spread); return the :class:`~tokvec.embedding.Coverage`. The table stays trainable."""
    from ..embedding import TokenEmbedding
    from ..tokenizers.word_vectors import vector_dim

    table = model.embed.token.weight  # (V, d)
    dim = vector_dim(path)
    if dim != table.shape[1]:
        raise TokvecValueError(f"--init-embeddings {path} holds {dim}-dimensional vectors but the model's d_model "
                               f"is {table.shape[1]}; pass --d-model {dim} (or a file of {table.shape[1]}-"
                               f"dimensional vectors)")
    if not hasattr(tokenizer, "vocab"):
        raise TokvecValueError(f"--init-embeddings needs a word (or char) tokenizer, whose tokens are words a "
                               f"vector file can hold; got {type(tokenizer).__name__}: pass --tokenizer word")
    emb, coverage = TokenEmbedding.from_word_vectors(path, vocab=tokenizer, oov="random", seed=seed,
                                                     dtype=table.dtype, device=table.device)
    with torch.no_grad():
        table.copy_(emb.weight)
    return coverage


def effective_batch(config: TrainConfig, world_size: int) -> int:
    """Windows per optimizer step over all processes: batch_size x world_size x grad_accum."""
    return config.batch_size * world_size * config.grad_accum


def _prepare_data(config: TrainConfig, run_dir: Path, saved: Mapping | None, ctx: dist_.DistContext,
                  source_tokenizer=None):
    """Rank 0 builds (or reloads) the tokenizer and encodes the corpus into ``run_dir/tokens.bin``;
    every rank then memory-maps that file and reads only the windows it trains on."""
    if ctx.is_main:
        if saved is not None:
            tokenizer = ckpt.load_run_tokenizer(run_dir, saved)
        elif source_tokenizer is not None:
            tokenizer = source_tokenizer
        else:
            tokenizer = build_tokenizer(config.tokenizer, corpus=config.corpus, encoding=config.encoding)
        write_token_file(tokenizer, corpus_files(config.corpus), run_dir / TOKENS_FILE, encoding=config.encoding)
    if ctx.distributed:
        from ..tokenizers.base import tokenizer_from_dict

        # also the barrier: once it arrives, tokens.bin is complete
        tok_json = dist_.broadcast_object(tokenizer.to_json_dict() if ctx.is_main else None, ctx)
        if not ctx.is_main:
            tokenizer = tokenizer_from_dict(tok_json, source="rank 0's tokenizer")
    return tokenizer, load_token_file(run_dir / TOKENS_FILE, tokenizer=tokenizer)


def _train(config: TrainConfig, progress, ctx: dist_.DistContext) -> TrainResult:
    from ..model.gpt import GPT

    run_dir = Path(config.out)
    saved = None
    if config.resume:
        saved = ckpt.read_run_config(run_dir)
    elif ckpt.has_checkpoint(run_dir):
        step = ckpt.read_run_config(run_dir)["step"]
        raise TokvecValueError(f"{run_dir} already holds a checkpoint (step {step}); resume it with "
                               f"--resume {run_dir}, or pick another --out")
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    source = None
    if config.init_from is not None and saved is None:
        from .pretrained import init_source

        source = init_source(config.init_from, dropout=config.dropout)
    tokenizer, ids = _prepare_data(config, run_dir, saved, ctx, source[1] if source else None)
    if source is not None:
        model_cfg = source[0].config
    elif saved is not None and config.init_from is not None:  # a fine-tune resumed: the saved architecture
        from ..model.config import ModelConfig

        model_cfg = ModelConfig.from_dict({**saved["model"], **({} if config.dropout is None
                                                                 else {"dropout": config.dropout})})
    else:
        model_cfg = config.model_config(tokenizer.vocab_size)
    model_dict = model_cfg.to_dict()
    data_info = {"tokens": int(len(ids)), "sha256": _ids_digest(ids)}
    if saved is not None:
        diffs = _resume_differences(saved, config, model_dict)
        if saved.get("data", {}).get("sha256") not in (None, data_info["sha256"]):
            diffs.append(f"corpus: checkpoint {saved['data']['tokens']} tokens (sha256 {saved['data']['sha256']}), "
                         f"now {data_info['tokens']} tokens (sha256 {data_info['sha256']})")
        if diffs:
            raise TokvecValueError(f"the checkpoint in {run_dir} does not match the flags: " + "; ".join(diffs)
                                   + ". Drop those flags to continue as saved, or train a new run")
    context = model_cfg.context_length
    split = split_by_position(ids, context=context, val_fraction=config.val_fraction, seed=config.seed,
                              mode=config.val_split)
    data_info.update(val_start=split.val_start, val_tokens=int(len(split.val)))

    torch.manual_seed(config.seed)
    model = GPT(model_cfg) if source is None else source[0]
    coverage = None
    if config.init_embeddings and saved is None:  # a resumed run has its own (trained) rows
        coverage = init_token_embeddings(model, tokenizer, config.init_embeddings, seed=config.seed)
    start_step, elapsed_before, metrics = 0, 0.0, []
    if saved is not None:
        ckpt.load_weights(run_dir, model, saved)  # whole weights, before any sharding
        start_step = saved["step"]
        elapsed_before = float(saved.get("elapsed_s", 0.0))
        metrics = [r for r in ckpt.read_metrics(run_dir) if r.get("step", 0) <= start_step]
    model.to(ctx.device)
    wrapped = dist_.wrap_model(model, ctx)
    optimizer, fused = make_optimizer(model, config, allow_fused=ctx.strategy != "fsdp")
    if saved is not None and (saved["step"] > 0 or ckpt.OPTIMIZER_FILE in saved["files"]):
        # (an imported model is a run at step 0 without optimizer state: it starts a fresh one)
        ckpt.load_optimizer(run_dir, optimizer, saved)
        dist_.reshard_optimizer_state(optimizer)  # FSDP: whole moments -> this rank's shards
    if ctx.is_main:
        ckpt.write_metrics(run_dir, metrics)
    forward = torch.compile(wrapped) if config.compile else wrapped
    autocast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if config.bf16 else nullcontext)

    ckpt_every = config.checkpoint_interval or config.eval_interval
    tokens_per_step = effective_batch(config, ctx.world_size) * context
    last_ckpt = start_step if saved is not None else None
    losses: list[float] = []
    train_loss = val_loss = None
    train_time, t_start = 0.0, time.perf_counter()
    tokens_per_s = 0.0

    def save(step: int) -> None:
        nonlocal last_ckpt
        # under FSDP gathering the shards is collective: every rank takes part, rank 0 writes
        weights = dist_.full_state_dict(wrapped, ctx) if ctx.strategy == "fsdp" else model
        opt_state = dist_.full_optimizer_state(optimizer, ctx) if ctx.strategy == "fsdp" else optimizer
        if ctx.is_main:
            ckpt.save_run(run_dir, model=weights, tokenizer=tokenizer, model_config=model_dict,
                          train_config=config.to_dict(), step=step, optimizer=opt_state,
                          extra={"data": {**data_info, "position": step}, "world_size": ctx.world_size,
                                 "elapsed_s": elapsed_before + time.perf_counter() - t_start})
        dist_.barrier(ctx)  # no rank runs ahead of a checkpoint that may yet fail
        last_ckpt = step

    model.train()
    step = start_step
    with _InterruptFlag() as interrupt:
        while step < config.max_steps:
            t0 = time.perf_counter()
            lr = config.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(config.seed * 7_919 + step)  # dropout: a function of (seed, step)
            optimizer.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for micro in range(config.grad_accum):
                x, y = random_batch(split.train, batch_size=config.batch_size, context=context,
                                    generator=batch_generator(config.seed, step, micro),
                                    shard=(ctx.rank, ctx.world_size))
                # DDP: average gradients across ranks only on the last micro-batch of the step
                sync = nullcontext() if micro == config.grad_accum - 1 or not hasattr(wrapped, "no_sync") \
                    else wrapped.no_sync()
                with sync, autocast():
                    _, loss = forward(x.to(ctx.device), y.to(ctx.device))
                with sync:
                    (loss / config.grad_accum).backward()
                loss_sum += float(loss.detach()) / config.grad_accum
            norm = (torch.nn.utils.clip_grad_norm_(wrapped.parameters(), config.grad_clip)
                    if config.grad_clip > 0 else torch.tensor(0.0))
            if ctx.distributed:  # every rank judges the same mean loss: all stop together or none
                loss_sum = dist_.all_reduce_sum([loss_sum], ctx)[0] / ctx.world_size
            norm = float(norm.full_tensor()) if hasattr(norm, "full_tensor") else float(norm)
            if not (math.isfinite(loss_sum) and math.isfinite(norm)):
                what = f"loss is {loss_sum}" if not math.isfinite(loss_sum) else f"gradient norm is {norm}"
                kept = (f"the last good checkpoint (step {last_ckpt}) in {run_dir} is kept" if last_ckpt is not None
                        else "no checkpoint had been saved yet")
                raise TrainingDivergedError(
                    f"{what} at step {step + 1}; training stopped and {kept}. "
                    f"Lower --lr (now {config.lr:g}) or check the corpus", step=step + 1,
                    last_checkpoint_step=last_ckpt)
            optimizer.step()
            step += 1
            losses.append(loss_sum)
            train_time += time.perf_counter() - t0
            tokens_per_s = tokens_per_step * len(losses) / max(train_time, 1e-9)
            info: dict[str, Any] = {"loss": loss_sum, "lr": lr, "tokens_per_s": tokens_per_s}
            if step % config.eval_interval == 0 or step == config.max_steps:
                kw = dict(batch_size=config.batch_size, context=context, max_batches=config.eval_batches,
                          autocast=autocast, ctx=ctx)
                scorer = model if ctx.distributed else forward  # DDP's wrapper would sync for nothing
                train_loss = evaluate(scorer, split.train, **kw)
                val_loss = evaluate(scorer, (split.val,), **kw)
                elapsed = elapsed_before + time.perf_counter() - t_start
                for name, value in (("train", train_loss), ("val", val_loss)):
                    metrics.append({"step": step, "split": name, "loss": value, "lr": lr,
                                    "tokens_per_s": tokens_per_s, "elapsed_s": elapsed})
                if ctx.is_main:
                    ckpt.write_metrics(run_dir, metrics)
                info.update(train_loss=train_loss, val_loss=val_loss)
            if step % ckpt_every == 0 or step == config.max_steps:
                save(step)
            if progress is not None and ctx.is_main:
                try:
                    progress(step, config.max_steps, info)
                except KeyboardInterrupt:  # raised by the callback (or Ctrl-C outside the main thread)
                    interrupt.raised = True
            if ctx.distributed:  # one rank's Ctrl-C stops them all at the same step, after a checkpoint
                interrupt.raised = dist_.all_reduce_sum([float(interrupt.raised)], ctx)[0] > 0
            if interrupt.raised:
                if last_ckpt != step:
                    save(step)
                raise KeyboardInterrupt(f"interrupted after step {step}; checkpoint saved in {run_dir}")
    if last_ckpt != step:
        save(step)  # max_steps already reached on resume: nothing ran, the checkpoint stands
    return TrainResult(run_dir=run_dir, step=step, start_step=start_step, train_loss=train_loss,
                       val_loss=val_loss, tokens_per_s=tokens_per_s,
                       elapsed_s=elapsed_before + time.perf_counter() - t_start, losses=losses,
                       metrics=metrics, model=model.eval(), tokenizer=tokenizer, fused_adamw=fused,
                       embedding_coverage=coverage)


__all__ = ["TrainConfig", "TrainResult", "TrainingDivergedError", "train", "evaluate",
           "effective_batch",
           "make_optimizer"]
