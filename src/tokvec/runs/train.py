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
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch
from torch import Tensor

from ..corpus import corpus_files, corpus_fingerprint
from ..data.batches import SPLITS, batch_generator, eval_batches, random_batch, split_by_position
from ..data.tokenfile import load_token_file, write_token_file
from ..device import PRECISIONS, resolve_precision, to_device
from ..errors import FormatError, RunDirError, TokvecError, TokvecValueError, TokvecWarning
from ..model.config import ModelConfig, model_fields, model_overrides
from ..model.gpt import GPT
from ..tokenizers import build_tokenizer
from ..tokenizers.build import names_a_file
from . import checkpoint as ckpt
from . import distributed as dist_
from .lock import RunClaim, with_absolute_paths
from .loop import LoopSettings, Trainee, TrainingDivergedError, TrainingLoop, warmup_cosine

# nanoGPT's finetune_shakespeare.py: lr 3e-5, no decay (min_lr = lr); a short warmup so that the first
# steps' Adam moments (estimated from one batch) cannot knock the pretrained weights far off.
FINETUNE_DEFAULTS: dict[str, Any] = dict(lr=3e-5, min_lr=3e-5, warmup_steps=10, max_steps=200, eval_interval=50)

# Fields that may change when a run is resumed; any other difference is an error.
RESUMABLE = (
    "max_steps",
    "eval_interval",
    "eval_batches",
    "checkpoint_interval",
    "compile",
    "bf16",
    "threads",
    "out",
    "resume",
    "force",
    "strategy",
    "backend",
    "dist_timeout_s",
    "device",
    "precision",
    "grad_checkpoint",
    "log_interval",
)
TOKENS_FILE = "tokens.bin"  # the corpus as token ids (+ tokens.bin.json), written by rank 0, memory-mapped

# Every ModelConfig field but vocab_size (the tokenizer's) is a training option, declared once, in
# ModelConfig: TrainConfig(d_model=64, norm="rmsnorm", ...). None takes the preset's value.
ModelFields = model_fields("ModelFields")
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelFields))


@dataclass
class TrainConfig(ModelFields):
    """Everything a training run depends on. The model fields (every :class:`~tokvec.model.ModelConfig`
    field but vocab_size, keyword-only) default to None: the preset's value."""

    corpus: Optional[str] = None  # file or directory; None: the Python standard library's source
    encoding: str = "utf-8"
    tokenizer: str = "char"  # char | word | bpe:N | path of a saved tokenizer
    preset: str = "tiny"
    model_options: dict = field(default_factory=dict)  # model fields as a dict (older spelling; wins over both)
    max_steps: int = 2000
    batch_size: int = 12
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr: Optional[float] = None  # end of the cosine; None: lr / 10 (nanoGPT)
    warmup_steps: Optional[int] = None  # None: min(100, max_steps // 10)
    weight_decay: float = 0.1  # on matrices and embeddings only
    beta1: float = 0.9
    beta2: float = 0.99  # nanoGPT's choice for small char models
    grad_clip: float = 1.0  # 0 disables clipping
    eval_interval: int = 250
    log_interval: int = 10  # the loss is read back (a device sync) every N steps and at evals
    eval_batches: int = 20  # batches of contiguous windows per split per eval
    checkpoint_interval: Optional[int] = None  # None: every eval
    val_fraction: float = 0.1
    val_split: str = "seeded"  # seeded: val block placed by the seed; tail: last val_fraction
    seed: int = 1337
    compile: bool = False
    bf16: bool = False  # the old spelling of precision="bf16"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (tokvec.device.resolve_device)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 | bf16-pure (tokvec.device.resolve_precision)
    grad_checkpoint: bool = False  # recompute each block's activations in backward (less memory)
    threads: Optional[int] = None  # torch intra-op threads during the run; None: torch's default
    out: str = "runs/tokvec"
    resume: bool = False  # continue the checkpoint in ``out``
    force: bool = False  # replace a finished run in ``out`` (discarding it) instead of refusing
    strategy: str = "auto"  # several processes (torchrun): auto = ddp; or fsdp, none
    backend: str = "auto"  # auto = nccl on GPUs, gloo on CPUs
    dist_timeout_s: float = 300.0  # a collective waiting longer for a dead peer fails the job
    init_from: Optional[str] = None  # fine-tune: a run directory or a Hugging Face model directory
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
        launch = {"strategy": "auto", "backend": "auto", "force": False}
        try:
            return cls.from_dict({**saved["train"], **launch, **overrides, "out": str(run_dir), "resume": True})
        except TypeError as e:  # a key of the right name but the wrong kind of value slipped through
            raise ckpt.CheckpointError(
                f"{Path(run_dir) / ckpt.CONFIG_FILE}: 'train' does not fit this tokvec's training config ({e})"
            ) from None

    def validate(self) -> "TrainConfig":
        """Collect every problem, then raise once naming each field, its value and the limit.

        Every number is range-checked (0, negatives, 10**20, NaN and inf are refused), and the model
        the flags describe is measured against this machine's memory before any work starts."""
        from .._checks import MAX_DIM, MAX_SEED, bound_from, check_float_arg, check_int_arg
        from ..errors import TokvecError

        problems = []

        def check(fn, name: str, **limits) -> None:
            try:
                fn(name, getattr(self, name), **limits)
            except TokvecError as e:
                problems.append(str(e))

        big = 10**12  # steps and intervals: more than any run could take, less than int64 overflow
        for name in ("max_steps", "eval_interval"):
            check(check_int_arg, name, lo=1, hi=big)
        check(check_int_arg, "eval_batches", lo=1, hi=big, fix="e.g. --eval-batches 20")
        for name in ("batch_size", "grad_accum"):
            check(check_int_arg, name, lo=1, hi=1 << 24)
        check(check_int_arg, "checkpoint_interval", lo=1, hi=big, none_ok=True)
        check(check_int_arg, "warmup_steps", lo=0, hi=big, none_ok=True, fix="--warmup 0 turns warmup off")
        check(check_int_arg, "seed", lo=0, hi=MAX_SEED)
        for name in ("d_model", "n_heads", "context_length", "d_ff", "n_kv_heads"):
            check(check_int_arg, name, lo=1, hi=MAX_DIM, none_ok=True)
        check(check_int_arg, "n_layers", lo=1, hi=None, none_ok=True)  # depth: the memory estimate judges it
        check(check_float_arg, "lr", lo=0.0, lo_open=True, hi=1e3, fix="e.g. 1e-3")
        check(
            check_float_arg,
            "min_lr",
            lo=0.0,
            hi=bound_from(self.lr),
            none_ok=True,
            fix="--min-lr ends the cosine, at most --lr (default lr/10)",
        )
        check(check_float_arg, "dropout", lo=0.0, hi=1.0, hi_open=True, none_ok=True, fix="e.g. --dropout 0.1")
        check(check_float_arg, "weight_decay", lo=0.0, hi=1e3, fix="e.g. --weight-decay 0.1; 0 turns it off")
        for name in ("beta1", "beta2"):
            check(check_float_arg, name, lo=0.0, hi=1.0, hi_open=True)
        check(check_float_arg, "grad_clip", lo=0.0, fix="0 disables clipping")
        check(
            check_float_arg, "val_fraction", lo=0.0, hi=1.0, lo_open=True, hi_open=True, fix="e.g. --val-fraction 0.1"
        )
        check(check_float_arg, "dist_timeout_s", lo=0.0, lo_open=True, hi=1e7)
        if self.val_split not in SPLITS:
            problems.append(f"val_split {self.val_split!r} must be one of {', '.join(SPLITS)}")
        try:
            from .._checks import check_threads

            check_threads("threads", self.threads)
        except TokvecError as e:
            problems.append(str(e))
        check(check_int_arg, "log_interval", lo=1, hi=big)
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r} must be one of {', '.join(PRECISIONS)}")
        elif self.bf16 and self.precision not in ("auto", "bf16"):
            problems.append(f"bf16=True (--bf16) contradicts precision {self.precision!r}; drop --bf16")
        problems += self._init_from_problems()
        if problems:
            raise TokvecValueError("bad training config: " + "; ".join(problems))
        self._check_model_early()
        return self

    def _init_from_problems(self) -> list[str]:
        """A fine-tune takes its architecture and tokenizer from ``init_from``: the flags that would change them."""
        if self.init_from is None:
            return []
        changed = [f"{k}={v!r}" for k, v in model_overrides(self).items() if k != "dropout"]
        changed += [f"{k}={v!r}" for k, v in self.model_options.items() if k != "dropout"]
        changed += [
            f"{k}={getattr(self, k)!r}"
            for k, default in (("preset", "tiny"), ("tokenizer", "char"))
            if getattr(self, k) != default
        ]
        if self.init_embeddings:
            changed.append(f"init_embeddings={self.init_embeddings!r}")
        if not changed:
            return []
        return [
            f"init_from {self.init_from} fixes the architecture and the tokenizer, so "
            f"{', '.join(changed)} cannot apply; drop those flags (only dropout may change)"
        ]

    def _check_model_early(self) -> None:
        """The model these flags describe, built with the smallest vocabulary its tokenizer could
        have, so that a shape that cannot work (heads that do not divide d_model) or an impossible
        size is refused before a tokenizer is trained or the corpus is read."""
        from ..model.config import PRESETS

        if self.preset not in PRESETS or self.init_from is not None:
            return  # model_config() names a bad preset later, with the choices; a fine-tune's shape is its source's
        from ..tokenizers.build import smallest_vocab_size

        self.model_config(smallest_vocab_size(self.tokenizer)).check_memory(self.batch_size, what="this model")

    def model_config(self, vocab_size: int):
        """The ModelConfig of this run: the preset, then the explicit fields, then ``model_options``."""

        return ModelConfig.preset(
            self.preset, **{**model_overrides(self), **self.model_options, "vocab_size": vocab_size}
        )

    @property
    def precision_spec(self) -> str:
        """``precision``, with the old ``bf16=True`` read as ``"bf16"``."""
        return "bf16" if self.bf16 and self.precision == "auto" else self.precision

    def loop_settings(self) -> LoopSettings:
        """How :class:`~tokvec.runs.loop.TrainingLoop` steps this run."""
        return LoopSettings(
            max_steps=self.max_steps,
            lr_at=self.lr_at,
            grad_accum=self.grad_accum,
            grad_clip=self.grad_clip,
            log_interval=self.log_interval,
            eval_interval=self.eval_interval,
            checkpoint_interval=self.checkpoint_interval,
            dropout_seed=self.seed,
            lr_hint=f"Lower --lr (now {self.lr:g}) or check the corpus",
        )

    @property
    def effective_warmup(self) -> int:
        return min(100, self.max_steps // 10) if self.warmup_steps is None else self.warmup_steps

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based): linear warmup, cosine to min_lr at max_steps."""
        return warmup_cosine(
            step,
            lr=self.lr,
            min_lr=self.lr / 10 if self.min_lr is None else self.min_lr,
            warmup=self.effective_warmup,
            max_steps=self.max_steps,
        )


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
    baselines: dict = field(default_factory=dict)  # val loss of trivial predictors: "unigram", "uniform"


def make_optimizer(
    model: torch.nn.Module, config: TrainConfig, *, allow_fused: bool = True
) -> tuple[torch.optim.AdamW, bool]:
    """AdamW with weight decay on 2-D tensors (matrices, embeddings) only; fused when available
    (and allowed: FSDP's sharded parameters take the plain implementation)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
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
        if (
            key in RESUMABLE
            or key in MODEL_FIELDS
            or key in ("preset", "model_options", "corpus")
            or key not in saved["train"]
        ):
            continue  # the corpus: a resumed run reads the ids it trained on from tokens.bin
        before = saved["train"][key]
        if key == "tokenizer" and names_a_file(before) and names_a_file(value):
            before, value = Path(before).name, Path(value).name  # stored relative by older versions
        if before != value:
            diffs.append(f"{key}: checkpoint {saved['train'][key]!r}, now {value!r}")
    saved_model = ModelConfig.from_dict(saved["model"]).to_dict()  # fields added since then at their defaults
    for key, value in model_config.items():
        if saved_model.get(key) != value:
            diffs.append(f"model {key}: checkpoint {saved_model.get(key)!r}, now {value!r}")
    return diffs


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    segments,
    *,
    batch_size: int,
    context: int,
    max_batches: int,
    autocast=nullcontext,
    ctx: dist_.DistContext = dist_.DistContext(),
    checked: bool = False,
) -> float:
    """Mean next-token loss over contiguous windows of ``segments`` (token-weighted).

    ``checked``: the segments' ids were range-checked already (a token file as loaded), so the
    model skips its per-batch check.

    Under several processes each rank scores its share of the same windows and the sums are added
    up, so the result is the mean over all of them, equal on every rank."""
    was_training = model.training
    model.eval()
    total, count, batches = torch.zeros((), dtype=torch.float64, device=ctx.device), 0, 0
    x = torch.zeros(1, context, dtype=torch.long)
    for x, y in eval_batches(
        segments, batch_size=batch_size, context=context, max_batches=max_batches, shard=(ctx.rank, ctx.world_size)
    ):
        with autocast():
            _, loss = model(to_device(x, ctx.device), to_device(y, ctx.device), checked=checked)
        total += loss.detach().double() * y.numel()  # summed on the device: one read-back at the end
        count += y.numel()
        batches += 1
    if ctx.strategy == "fsdp":  # every FSDP forward is collective: a rank with fewer windows runs idle ones
        for _ in range(dist_.all_reduce_max(batches, ctx) - batches):
            with autocast():
                model(x[:1].to(ctx.device))
    model.train(was_training)
    total, count = dist_.all_reduce_sum([float(total), count], ctx)
    return total / max(count, 1)


def train(config: TrainConfig, *, progress: Callable[[int, int, dict], None] | None = None) -> TrainResult:
    """Train (or resume) the run ``config`` describes; checkpoints and metrics go to ``config.out``.

    ``progress(step, max_steps, info)`` is called after every optimizer step; ``info`` holds
    ``loss``, ``lr``, ``tokens_per_s`` and, after an eval, ``train_loss`` and ``val_loss``.
    Ctrl-C finishes the current step, saves a checkpoint, then raises KeyboardInterrupt.

    Launched by ``torchrun`` (WORLD_SIZE > 1) it trains data-parallel (``config.strategy``: ddp or
    fsdp): only rank 0 writes files and calls ``progress``; see :mod:`tokvec.runs.distributed`.
    """
    config = with_absolute_paths(config.validate(), ("out", "corpus"))
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    ctx = dist_.init_distributed(config.strategy, config.backend, timeout_s=config.dist_timeout_s, device=config.device)
    try:
        with dist_.collective_errors(ctx, config.dist_timeout_s):
            files = _corpus_list(config)
            with _claimed(config, files, ctx):
                result = _train(config, progress, ctx, files)
            # every rank is past its last collective (and rank 0 has closed the run) before any rank
            # tears its connections down: a peer that leaves first while the other still waits on the
            # group aborted that process (SIGABRT) now and then, after its checkpoint was written
            dist_.barrier(ctx)
            return result
    finally:
        torch.set_num_threads(threads)
        dist_.shutdown(ctx)


def _corpus_list(config: TrainConfig) -> list[Path] | None:
    """The corpus files, never those of the run directory itself; None when a resumed run's corpus is
    gone (it then trains on the ids it saved in tokens.bin)."""
    try:
        return corpus_files(config.corpus, exclude=[config.out])
    except (FileNotFoundError, TokvecValueError):
        if config.resume:
            return None
        raise


@contextmanager
def _claimed(config: TrainConfig, files: list[Path] | None, ctx: dist_.DistContext) -> Iterator[None]:
    """Rank 0 claims (checks and locks) the run directory for the whole run; every rank learns
    whether it may go on, so a refused claim stops them all with the same message."""
    claim, failure = None, None
    if ctx.is_main:
        inputs = list(files or []) + ([config.tokenizer] if names_a_file(config.tokenizer) else [])
        try:
            claim = RunClaim(config.out, "lm", resume=config.resume, force=config.force, inputs=inputs).__enter__()
        except (TokvecError, OSError) as e:
            failure = e
    if ctx.distributed:
        message = dist_.broadcast_object(None if failure is None else str(failure), ctx)
        if message is not None and failure is None:
            raise RunDirError(f"rank 0 refused the run directory: {message}")
    if failure is not None:
        raise failure
    if claim is None:
        yield
        return
    try:
        yield
    except BaseException as e:
        claim.__exit__(type(e), e, e.__traceback__)
        raise
    claim.__exit__(None, None, None)


def loss_baselines(split, vocab_size: int) -> dict[str, float]:
    """What a model that learned nothing about order scores on the val split, in nats per token (the
    unit of the loss): ``unigram`` predicts every token by its frequency in the train split (add-one
    smoothed; the cross-entropy -mean log p(val token)), ``uniform`` guesses any id, ln(vocab_size)."""
    counts = np.ones(vocab_size, dtype=np.float64)
    for segment in split.train:
        counts += np.bincount(np.asarray(segment, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    logp = np.log(counts / counts.sum())
    val = np.asarray(split.val, dtype=np.int64)
    return {"unigram": float(-logp[val].mean()) if len(val) else math.nan, "uniform": math.log(vocab_size)}


def init_token_embeddings(model, tokenizer, path: str, *, seed: int = 0):
    """Copy pretrained word vectors into ``model``'s token table (rows the file lacks: random, with
    the file's spread); return the :class:`~tokvec.embedding.Coverage`. The table stays trainable."""
    from ..embedding import TokenEmbedding
    from ..tokenizers.word_vectors import vector_dim

    table = model.embed.token.weight  # (V, d)
    dim = vector_dim(path)
    if dim != table.shape[1]:
        raise TokvecValueError(
            f"--init-embeddings {path} holds {dim}-dimensional vectors but the model's d_model "
            f"is {table.shape[1]}; pass --d-model {dim} (or a file of {table.shape[1]}-"
            f"dimensional vectors)"
        )
    if not hasattr(tokenizer, "vocab"):
        raise TokvecValueError(
            f"--init-embeddings needs a word (or char) tokenizer, whose tokens are words a "
            f"vector file can hold; got {type(tokenizer).__name__}: pass --tokenizer word"
        )
    emb, coverage = TokenEmbedding.from_word_vectors(
        path, vocab=tokenizer, oov="random", seed=seed, dtype=table.dtype, device=table.device
    )
    with torch.no_grad():
        table.copy_(emb.weight)
    return coverage


def effective_batch(config: TrainConfig, world_size: int) -> int:
    """Windows per optimizer step over all processes: batch_size x world_size x grad_accum."""
    return config.batch_size * world_size * config.grad_accum


def _prepare_data(
    config: TrainConfig,
    run_dir: Path,
    saved: Mapping | None,
    ctx: dist_.DistContext,
    files: list[Path] | None,
    source_tokenizer=None,
):
    """Rank 0 builds (or reloads) the tokenizer and encodes the corpus into ``run_dir/tokens.bin``;
    every rank then memory-maps that file and reads only the windows it trains on.

    A resumed run trains on the ids it saved (tokens.bin, checked against the checkpoint's digest),
    even when the corpus has since moved or changed; it re-encodes the corpus only when those ids
    are missing or damaged."""
    if ctx.is_main:
        tokens = run_dir / TOKENS_FILE
        if saved is not None:
            tokenizer = ckpt.load_run_tokenizer(run_dir, saved)
            if _saved_ids_intact(tokens, tokenizer, saved):
                _say_if_corpus_changed(config, files, saved)
            elif files is None:
                raise ckpt.CheckpointError(
                    f"{tokens} is missing or damaged and the corpus {config.corpus} is gone, so the ids this run "
                    f"trained on cannot be rebuilt; restore the corpus (or tokens.bin) and resume again"
                )
            else:
                write_token_file(tokenizer, files, tokens, encoding=config.encoding)
        elif source_tokenizer is not None:
            tokenizer = source_tokenizer
            write_token_file(tokenizer, files, tokens, encoding=config.encoding)
        else:
            tokenizer = build_tokenizer(config.tokenizer, corpus=files, encoding=config.encoding)
            write_token_file(tokenizer, files, tokens, encoding=config.encoding)
    if ctx.distributed:
        from ..tokenizers.base import tokenizer_from_dict

        # also the barrier: once it arrives, tokens.bin is complete
        tok_json = dist_.broadcast_object(tokenizer.to_json_dict() if ctx.is_main else None, ctx)
        if not ctx.is_main:
            tokenizer = tokenizer_from_dict(tok_json, source="rank 0's tokenizer")
    return tokenizer, load_token_file(run_dir / TOKENS_FILE, tokenizer=tokenizer)


def _saved_ids_intact(tokens: Path, tokenizer, saved: Mapping) -> bool:
    want = (saved.get("data") or {}).get("sha256")
    try:
        return want is not None and _ids_digest(load_token_file(tokens, tokenizer=tokenizer)) == want
    except (FormatError, OSError):
        return False


def _say_if_corpus_changed(config: TrainConfig, files: list[Path] | None, saved: Mapping) -> None:
    where = config.corpus or "the Python standard library"
    if files is None:
        warnings.warn(
            f"the corpus {where} is gone; resuming on the ids the run saved in {TOKENS_FILE}",
            TokvecWarning,
            stacklevel=3,
        )
        return
    before = (saved.get("data") or {}).get("corpus_fingerprint")
    if before is not None and before != corpus_fingerprint(files):
        warnings.warn(
            f"the corpus {where} changed since this run started; resuming on the ids it trained on "
            f"({TOKENS_FILE}); start a new run to train on the new text",
            TokvecWarning,
            stacklevel=3,
        )


def _train(config: TrainConfig, progress, ctx: dist_.DistContext, files: list[Path] | None) -> TrainResult:
    run_dir = Path(config.out)
    precision = resolve_precision(config.precision_spec, ctx.device)  # fp16 on a CPU fails before any work
    saved = ckpt.read_run_config(run_dir) if config.resume else None
    source, tokenizer, ids, model_cfg = _data_and_model_config(config, run_dir, saved, ctx, files)
    model_dict = model_cfg.to_dict()
    data_info = _data_info(config, ids, files, saved, model_dict, run_dir)
    context = model_cfg.context_length
    split = split_by_position(
        ids, context=context, val_fraction=config.val_fraction, seed=config.seed, mode=config.val_split
    )
    data_info.update(val_start=split.val_start, val_tokens=int(len(split.val)))

    torch.manual_seed(config.seed)
    if source is not None:
        model = source[0]
    elif saved is not None:  # every weight comes from the checkpoint: no random init to overwrite
        model = GPT.empty(model_cfg)
    else:
        model = GPT(model_cfg)
    coverage = None
    if config.init_embeddings and saved is None:  # a resumed run has its own (trained) rows
        coverage = init_token_embeddings(model, tokenizer, config.init_embeddings, seed=config.seed)
    metrics = []
    if saved is not None:
        # whole weights, before any sharding; a damaged file raises here and the half-read model is dropped
        ckpt.load_weights(run_dir, model, saved)
        metrics = [r for r in ckpt.read_metrics(run_dir, strict=False) if r.get("step", 0) <= saved["step"]]
    trainee, fused = _trainee(config, model, precision, ctx, saved, run_dir)
    if ctx.is_main:
        ckpt.write_metrics(run_dir, metrics)
    task = _LanguageModelTask(config, split, context, tokenizer, model_dict, data_info, metrics, ctx)
    start_step = saved["step"] if saved is not None else 0
    loop = TrainingLoop(
        task,
        trainee,
        config.loop_settings(),
        run_dir=run_dir,
        start_step=start_step,
        resumed=saved is not None,
        progress=progress,
        elapsed_before=float(saved.get("elapsed_s", 0.0)) if saved is not None else 0.0,
    )
    done = loop.run()
    return TrainResult(
        run_dir=run_dir,
        step=done.step,
        start_step=start_step,
        train_loss=done.evaluated.get("train_loss"),
        val_loss=done.evaluated.get("val_loss"),
        tokens_per_s=done.throughput,
        elapsed_s=done.elapsed_s,
        losses=done.losses,
        metrics=metrics,
        model=model.eval(),
        tokenizer=tokenizer,
        fused_adamw=fused,
        embedding_coverage=coverage,
        baselines=loss_baselines(split, tokenizer.vocab_size),
    )


def _data_and_model_config(
    config: TrainConfig, run_dir: Path, saved: Mapping | None, ctx: dist_.DistContext, files: list[Path] | None
):
    """(source, tokenizer, ids, model config): ``source`` is the (model, tokenizer) a fine-tune starts from."""
    source = None
    if config.init_from is not None and saved is None:
        from .pretrained import init_source

        source = init_source(config.init_from, dropout=config.dropout)
    tokenizer, ids = _prepare_data(config, run_dir, saved, ctx, files, source[1] if source else None)
    if source is not None:
        model_cfg = source[0].config
    elif saved is not None and config.init_from is not None:  # a fine-tune resumed: the saved architecture
        model_cfg = ModelConfig.from_dict(
            {**saved["model"], **({} if config.dropout is None else {"dropout": config.dropout})}
        )
    else:
        model_cfg = config.model_config(tokenizer.vocab_size)
    model_cfg.check_memory(config.batch_size, what="this model")
    return source, tokenizer, ids, model_cfg


def _data_info(
    config: TrainConfig,
    ids: np.ndarray,
    files: list[Path] | None,
    saved: Mapping | None,
    model_dict: Mapping,
    run_dir: Path,
) -> dict:
    """What config.json records about the ids; on resume, refuse a checkpoint the flags or ids contradict."""
    data_info = {"tokens": int(len(ids)), "sha256": _ids_digest(ids)}
    fingerprint = (
        (saved.get("data") or {}).get("corpus_fingerprint")
        if saved is not None
        else corpus_fingerprint(files)
        if files is not None
        else None
    )
    if fingerprint is not None:
        data_info["corpus_fingerprint"] = fingerprint
    if saved is not None:
        diffs = _resume_differences(saved, config, model_dict)
        if saved.get("data", {}).get("sha256") not in (None, data_info["sha256"]):
            diffs.append(
                f"corpus: checkpoint {saved['data']['tokens']} tokens (sha256 {saved['data']['sha256']}), "
                f"now {data_info['tokens']} tokens (sha256 {data_info['sha256']})"
            )
        ckpt.refuse_changed_flags(run_dir, diffs)
    return data_info


def _trainee(
    config: TrainConfig, model: torch.nn.Module, precision, ctx: dist_.DistContext, saved: Mapping | None, run_dir: Path
) -> tuple[Trainee, bool]:
    """The model on its device and dtype, wrapped for DDP/FSDP, with its optimizer (restored on resume)
    and, under fp16, a gradient scaler; and whether AdamW is the fused one."""
    model.to(ctx.device)
    if precision.param_dtype == torch.bfloat16:
        model.bfloat16()  # bf16-pure: the weights themselves (floating tensors only, never rope's complex table)
    model.grad_checkpoint = config.grad_checkpoint
    wrapped = dist_.wrap_model(model, ctx)
    optimizer, fused = make_optimizer(model, config, allow_fused=ctx.strategy != "fsdp")
    if saved is not None and (saved["step"] > 0 or ckpt.OPTIMIZER_FILE in saved["files"]):
        # (an imported model is a run at step 0 without optimizer state: it starts a fresh one)
        ckpt.load_optimizer(run_dir, optimizer, saved)
        dist_.reshard_optimizer_state(optimizer)  # FSDP: whole moments -> this rank's shards
    forward = torch.compile(wrapped) if config.compile else wrapped
    # fp16 gradients underflow without a loss scale; the scaler skips a step whose gradients overflowed
    scaler = torch.amp.GradScaler(ctx.device.type) if precision.scaled else None
    return Trainee(
        model=model, optimizer=optimizer, precision=precision, ctx=ctx, wrapped=wrapped, forward=forward, scaler=scaler
    ), fused


class _LanguageModelTask:
    """Next-token prediction on the run's token file: what :class:`TrainingLoop` needs of an LM run."""

    throughput_key = "tokens_per_s"

    def __init__(
        self,
        config: TrainConfig,
        split,
        context: int,
        tokenizer,
        model_dict: Mapping,
        data_info: Mapping,
        metrics: list[dict],
        ctx: dist_.DistContext,
    ) -> None:
        self.config, self.split, self.context, self.tokenizer = config, split, context, tokenizer
        self.model_dict, self.data_info, self.metrics, self.ctx = model_dict, data_info, metrics, ctx
        self.items_per_step = effective_batch(config, ctx.world_size) * context

    def batch(self, step: int, micro: int) -> tuple[Tensor, Tensor]:
        """x, y: (batch_size, context) windows of this rank's share, drawn from (seed, step, micro)."""
        x, y = random_batch(
            self.split.train,
            batch_size=self.config.batch_size,
            context=self.context,
            generator=batch_generator(self.config.seed, step, micro),
            shard=(self.ctx.rank, self.ctx.world_size),
        )
        return to_device(x, self.ctx.device), to_device(y, self.ctx.device)

    def loss(self, forward: Callable, batch: tuple[Tensor, Tensor]) -> Tensor:
        # the token file was range-checked when it was loaded: no per-batch check (a sync)
        return forward(*batch, checked=True)[1]

    def evaluate(self, trainee: Trainee) -> dict[str, float]:
        kw = dict(
            batch_size=self.config.batch_size,
            context=self.context,
            max_batches=self.config.eval_batches,
            autocast=trainee.autocast,
            ctx=self.ctx,
            checked=True,
        )
        scorer = trainee.model if self.ctx.distributed else trainee.forward  # DDP's wrapper would sync for nothing
        return {
            "train_loss": evaluate(scorer, self.split.train, **kw),
            "val_loss": evaluate(scorer, (self.split.val,), **kw),
        }

    def record(self, step: int, values: Mapping[str, float], info: Mapping[str, Any]) -> None:
        for name in ("train", "val"):
            self.metrics.append(
                {
                    "step": step,
                    "split": name,
                    "loss": values[f"{name}_loss"],
                    "lr": info["lr"],
                    "tokens_per_s": info["tokens_per_s"],
                    "elapsed_s": info["elapsed_s"],
                }
            )
        if self.ctx.is_main:
            ckpt.write_metrics(self.config.out, self.metrics)

    def save(self, step: int, weights: Any, optimizer_state: Any, info: Mapping[str, Any]) -> None:
        ckpt.save_run(
            self.config.out,
            model=weights,
            tokenizer=self.tokenizer,
            model_config=self.model_dict,
            train_config=self.config.to_dict(),
            step=step,
            optimizer=optimizer_state,
            extra={
                "data": {**self.data_info, "position": step},
                "world_size": self.ctx.world_size,
                "elapsed_s": info["elapsed_s"],
            },
        )


__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "train",
    "evaluate",
    "effective_batch",
    "make_optimizer",
]
