"""`tokvec train`: train a language model into a run directory."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from ..runs.launch import launch_env
from . import (
    DEVICE_HELP,
    CLIError,
    app,
    check_resume_flags,
    err,
    in_flag_names,
    out,
    progress_bar,
    resolve_device_flag,
    stop_interrupted,
)


def _train_overrides(**flags) -> tuple[dict, list[str]]:
    """The flags the user gave (not None), as TrainConfig fields; and every field a flag sets."""
    return {k: v for k, v in flags.items() if v is not None}, list(flags)


@app.command()
def train(
    corpus: Optional[Path] = typer.Option(
        None, "--corpus", help="Text file or directory (default: the Python standard library's source)."
    ),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Text encoding of the corpus (utf-8)."),
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", "-t", help="char, word, bpe:N or a tokenizer file (char)."
    ),
    preset: Optional[str] = typer.Option(None, "--preset", help="Model size: tiny, small, gpt2-124m (tiny)."),
    positional: Optional[str] = typer.Option(None, "--positional", help="Positional scheme (preset's)."),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="Width of token vectors (preset's)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Transformer blocks (preset's)."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention heads (preset's)."),
    context: Optional[int] = typer.Option(None, "--context", help="Context length in tokens (preset's)."),
    norm: Optional[str] = typer.Option(None, "--norm", help="layernorm (GPT-2) or rmsnorm (Llama) (preset's)."),
    activation: Optional[str] = typer.Option(None, "--activation", help="gelu (GPT-2) or swiglu (Llama) (preset's)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps in all (2000)."),
    eval_interval: Optional[int] = typer.Option(None, "--eval-interval", help="Eval + checkpoint every N steps (250)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per micro-batch (12)."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per step (1)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (1e-3; 3e-5 with --init-from)."),
    min_lr: Optional[float] = typer.Option(None, "--min-lr", help="Learning rate at the end of the cosine (lr/10)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Linear warmup steps (min(100, max-steps/10))."),
    weight_decay: Optional[float] = typer.Option(
        None, "--weight-decay", help="AdamW weight decay on matrices and embeddings (0.1)."
    ),
    dropout: Optional[float] = typer.Option(
        None, "--dropout", help="Dropout in [0, 1) (preset's; the only model flag --init-from takes)."
    ),
    eval_batches: Optional[int] = typer.Option(None, "--eval-batches", help="Batches per split at each eval (20)."),
    val_fraction: Optional[float] = typer.Option(
        None, "--val-fraction", help="Share of the corpus held out for the val loss, in (0, 1) (0.1)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of init, split and batches (1337)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (runs/tokvec)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    force: bool = typer.Option(False, "--force", help="Replace the run already in --out (it is discarded)."),
    init_from: Optional[Path] = typer.Option(
        None,
        "--init-from",
        help="Fine-tune a run or a Hugging Face model directory: its architecture, weights and tokenizer (docs/hf.md).",
    ),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="The old spelling of --precision bf16."),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP + " (auto)"),
    precision: Optional[str] = typer.Option(
        None,
        "--precision",
        help="auto, fp32, bf16, fp16 (CUDA) or bf16-pure "
        "(auto: bf16 on GPUs that have it, else fp32; see `tokvec env`).",
    ),
    grad_checkpoint: Optional[bool] = typer.Option(
        None,
        "--grad-checkpoint/--no-grad-checkpoint",
        help="Recompute activations in backward: less memory, ~1/3 more compute.",
    ),
    log_interval: Optional[int] = typer.Option(
        None, "--log-interval", help="Read the loss back every N steps (10); each read waits for the device."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (torch's default)."),
    sample: int = typer.Option(0, "--sample", help="After training, print this many sampled tokens."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Under torchrun: ddp (default) or fsdp."),
    backend: Optional[str] = typer.Option(
        None, "--backend", help="Under torchrun: gloo (CPUs) or nccl (GPUs); auto by default."
    ),
    init_embeddings: Optional[Path] = typer.Option(
        None,
        "--init-embeddings",
        help="GloVe / word2vec / fastText "
        "file: the token table starts from its vectors (--tokenizer "
        "word; --d-model must match).",
    ),
) -> None:
    """Train a GPT language model on a corpus; checkpoints, tokenizer and metrics go to --out.

    On several processes: torchrun --nproc_per_node=N -m tokvec train ... (only rank 0 prints)."""

    from ..runs.train import TrainConfig, effective_batch
    from ..runs.train import train as run_training

    flags, fields = _train_overrides(
        corpus=None if corpus is None else str(corpus),
        encoding=encoding,
        tokenizer=tokenizer,
        preset=preset,
        positional=positional,
        d_model=d_model,
        n_layers=layers,
        n_heads=heads,
        context_length=context,
        norm=norm,
        activation=activation,
        max_steps=max_steps,
        eval_interval=eval_interval,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        min_lr=min_lr,
        warmup_steps=warmup,
        weight_decay=weight_decay,
        dropout=dropout,
        eval_batches=eval_batches,
        val_fraction=val_fraction,
        seed=seed,
        compile=compile_,
        bf16=bf16,
        threads=threads,
        strategy=strategy,
        backend=backend,
        device=device,
        precision=precision,
        grad_checkpoint=grad_checkpoint,
        log_interval=log_interval,
        init_embeddings=None if init_embeddings is None else str(init_embeddings),
    )
    check_resume_flags(resume, out_dir, force)
    if resume is not None:
        if init_from is not None:
            raise CLIError(f"--resume {resume} continues a run as saved; drop --init-from {init_from}")
    # errors name --heads, --warmup, ..., what the user typed (on resume only the flags given: the rest
    # comes from the run's config.json)
    with in_flag_names(flags if resume is not None else fields):
        if resume is not None:
            config = TrainConfig.for_resume(str(resume), **flags)
        elif init_from is not None:
            config = TrainConfig.finetune(str(init_from), **flags, out=str(out_dir or TrainConfig.out), force=force)
        else:
            config = TrainConfig(**flags, out=str(out_dir or TrainConfig.out), force=force)
        config.validate()  # bad numbers and impossible sizes fail before anything is printed or read
    run_dir = Path(config.out)
    world, rank, _ = launch_env()
    if rank != 0:  # under torchrun only rank 0 speaks; the others train silently
        out.quiet = err.quiet = True
    if world == 1:  # under torchrun each rank takes its LOCAL_RANK GPU (or the CPU under gloo)
        from ..device import resolve_precision

        where = resolve_device_flag(config.device, "train")
        chosen = resolve_precision(config.precision_spec, where)
        if config.precision_spec == "auto":
            err.print(f"tokvec train: precision {chosen.name} (auto: {chosen.reason})", markup=False, soft_wrap=True)
    what = f"resuming {run_dir}" if config.resume else f"training into {run_dir}"
    model_from = (
        f"fine-tuning {config.init_from} (its model and tokenizer)"
        if config.init_from
        else f"tokenizer {config.tokenizer}, preset {config.preset}"
    )
    err.print(
        f"tokvec train: {what} (corpus {config.corpus or 'Python standard library'}, {model_from})",
        markup=False,
        soft_wrap=True,
    )
    err.print(
        f"tokvec train: effective batch {effective_batch(config, world)} windows per step = batch size "
        f"{config.batch_size} x {world} process(es) x {config.grad_accum} accumulation step(s)",
        markup=False,
        soft_wrap=True,
    )
    last = {"step": 0}
    with progress_bar(config.max_steps, "training") as advance:

        def progress(step: int, total: int, info: dict) -> None:
            if last["step"] == 0 and step > 1:
                advance(step - 1)  # a resumed run starts part-way
            if "loss" in info:  # read back every log_interval steps only (a device sync)
                advance(1, description=f"loss {info['loss']:.3f}  {info['tokens_per_s']:,.0f} tok/s")
            else:
                advance(1)
            last["step"] = step
            if "val_loss" in info:
                out.print(
                    f"step {step:>6}  train {info['train_loss']:.4f}  val {info['val_loss']:.4f}"
                    f"  lr {info['lr']:.2e}  {info['tokens_per_s']:,.0f} tok/s"
                )

        try:
            with _warnings_as_lines():
                result = run_training(config, progress=progress)
        except KeyboardInterrupt:
            stop_interrupted(last["step"], run_dir, _saved_step(run_dir), "tokvec train")
    console = out
    if result.embedding_coverage is not None:
        console.print(
            f"token table initialised from word vectors: {result.embedding_coverage}", markup=False, soft_wrap=True
        )
    params = result.model.num_parameters()
    losses = "" if result.val_loss is None else f"train {result.train_loss:.4f}  val {result.val_loss:.4f}  "
    console.print(
        f"done: step {result.step}  {losses}{result.tokens_per_s:,.0f} tok/s  {params:,} parameters  -> {run_dir}",
        markup=False,
        soft_wrap=True,
    )
    if result.val_loss is not None and result.baselines:
        unigram, uniform = result.baselines["unigram"], result.baselines["uniform"]
        console.print(
            f"val loss {result.val_loss:.3f} nats/token; baselines: {unigram:.3f} (unigram: token "
            f"frequencies only), {uniform:.3f} (uniform guess over {result.tokenizer.vocab_size:,} "
            f"tokens)",
            markup=False,
            soft_wrap=True,
        )
    if sample > 0:
        from ..generate import DEFAULT_TEMPERATURE, stream

        console.print(f"--- sample (temperature {DEFAULT_TEMPERATURE}, top-k 50) ---", markup=False)
        for piece in stream(
            result.model, result.tokenizer, "\n", sample, temperature=DEFAULT_TEMPERATURE, top_k=50, seed=config.seed
        ):
            console.print(piece, end="", markup=False, highlight=False)
        console.print()


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show the library's warnings (a changed corpus, ...) as one ``tokvec: warning:`` line each, as they happen."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda message, *_args, **_kw: err.print(
            f"tokvec: warning: {message}", markup=False, soft_wrap=True
        )
        yield


def _saved_step(run_dir: Path) -> Optional[int]:
    """The step of the checkpoint in ``run_dir``; None when there is none (or it is damaged)."""
    from ..runs.checkpoint import CheckpointError, has_checkpoint, read_run_config

    try:
        return read_run_config(run_dir)["step"] if has_checkpoint(run_dir) else None
    except (CheckpointError, OSError):
        return None
