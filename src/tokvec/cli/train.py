"""`tokvec train`: train a language model into a run directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from . import CLIError, app, err, out, progress_bar


# train (training half of the LM issue)
def _train_overrides(**flags) -> dict:
    """The flags the user gave (not None), as TrainConfig fields."""
    return {k: v for k, v in flags.items() if v is not None}


@app.command()
def train(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Text file or directory (default: the Python "
                                          "standard library's source)."),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Text encoding of the corpus (utf-8)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", "-t", help="char, word, bpe:N or a tokenizer "
                                            "file (char)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Model size: tiny, small, gpt2-124m (tiny)."),
    positional: Optional[str] = typer.Option(None, "--positional", help="Positional scheme (preset's)."),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="Width of token vectors (preset's)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Transformer blocks (preset's)."),
    heads: Optional[int] = typer.Option(None, "--heads", help="Attention heads (preset's)."),
    context: Optional[int] = typer.Option(None, "--context", help="Context length in tokens (preset's)."),
    norm: Optional[str] = typer.Option(None, "--norm", help="layernorm (GPT-2) or rmsnorm (Llama) (preset's)."),
    activation: Optional[str] = typer.Option(None, "--activation", help="gelu (GPT-2) or swiglu (Llama) "
                                             "(preset's)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps in all (2000)."),
    eval_interval: Optional[int] = typer.Option(None, "--eval-interval", help="Eval + checkpoint every N steps "
                                                "(250)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per micro-batch (12)."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per step (1)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (1e-3; 3e-5 with --init-from)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of init, split and batches (1337)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (runs/tokvec)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Fine-tune a run or a Hugging Face model "
                                             "directory: its architecture, weights and tokenizer (docs/hf.md)."),
    compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    bf16: Optional[bool] = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast on the CPU."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (torch's default)."),
    sample: int = typer.Option(0, "--sample", help="After training, print this many sampled tokens."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="Under torchrun: ddp (default) or fsdp."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Under torchrun: gloo (CPUs) or nccl (GPUs); "
                                          "auto by default."),
    init_embeddings: Optional[Path] = typer.Option(None, "--init-embeddings", help="GloVe / word2vec / fastText "
                                                   "file: the token table starts from its vectors (--tokenizer "
                                                   "word; --d-model must match)."),
) -> None:
    """Train a GPT language model on a corpus; checkpoints, tokenizer and metrics go to --out.

    On several processes: torchrun --nproc_per_node=N -m tokvec train ... (only rank 0 prints)."""

    from ..runs.train import TrainConfig, effective_batch
    from ..runs.train import train as run_training

    flags = _train_overrides(corpus=None if corpus is None else str(corpus), encoding=encoding,
                             tokenizer=tokenizer, preset=preset, positional=positional, d_model=d_model,
                             n_layers=layers, n_heads=heads, context_length=context, norm=norm,
                             activation=activation, max_steps=max_steps,
                             eval_interval=eval_interval, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
                             seed=seed, compile=compile_, bf16=bf16, threads=threads, strategy=strategy,
                             backend=backend,
                             init_embeddings=None if init_embeddings is None else str(init_embeddings))
    if resume is not None:
        if out_dir is not None and out_dir.resolve() != resume.resolve():
            raise CLIError(f"--out {out_dir} and --resume {resume} differ; a resumed run continues in its own "
                           f"directory, so drop --out")
        if init_from is not None:
            raise CLIError(f"--resume {resume} continues a run as saved; drop --init-from {init_from}")
        config = TrainConfig.for_resume(str(resume), **flags)
    elif init_from is not None:
        config = TrainConfig.finetune(str(init_from), **flags, out=str(out_dir or TrainConfig.out)).validate()
    else:
        config = TrainConfig(**flags, out=str(out_dir or TrainConfig.out))
    run_dir = Path(config.out)
    world, rank = int(os.environ.get("WORLD_SIZE", "1") or 1), int(os.environ.get("RANK", "0") or 0)
    if rank != 0:  # under torchrun only rank 0 speaks; the others train silently
        out.quiet = err.quiet = True
    what = f"resuming {run_dir}" if config.resume else f"training into {run_dir}"
    model_from = (f"fine-tuning {config.init_from} (its model and tokenizer)" if config.init_from
                  else f"tokenizer {config.tokenizer}, preset {config.preset}")
    err.print(f"tokvec train: {what} (corpus {config.corpus or 'Python standard library'}, {model_from})",
              markup=False, soft_wrap=True)
    err.print(f"tokvec train: effective batch {effective_batch(config, world)} windows per step = batch size "
              f"{config.batch_size} x {world} process(es) x {config.grad_accum} accumulation step(s)",
              markup=False, soft_wrap=True)
    last = {"step": 0}
    with progress_bar(config.max_steps, "training") as advance:
        def progress(step: int, total: int, info: dict) -> None:
            if last["step"] == 0 and step > 1:
                advance(step - 1)  # a resumed run starts part-way
            advance(1, description=f"loss {info['loss']:.3f}  {info['tokens_per_s']:,.0f} tok/s")
            last["step"] = step
            if "val_loss" in info:
                out.print(f"step {step:>6}  train {info['train_loss']:.4f}  val {info['val_loss']:.4f}"
                          f"  lr {info['lr']:.2e}  {info['tokens_per_s']:,.0f} tok/s")

        try:
            result = run_training(config, progress=progress)
        except KeyboardInterrupt:
            err.print(f"tokvec: interrupted after step {last['step']}; checkpoint saved in {run_dir}; "
                      f"continue with: tokvec train --resume {run_dir}", markup=False, soft_wrap=True)
            raise typer.Exit(130)
    console = out
    if result.embedding_coverage is not None:
        console.print(f"token table initialised from word vectors: {result.embedding_coverage}", markup=False,
                      soft_wrap=True)
    params = result.model.num_parameters()
    losses = "" if result.val_loss is None else f"train {result.train_loss:.4f}  val {result.val_loss:.4f}  "
    console.print(f"done: step {result.step}  {losses}{result.tokens_per_s:,.0f} tok/s  {params:,} parameters"
                  f"  -> {run_dir}", markup=False, soft_wrap=True)
    if sample > 0:
        from ..generate import stream

        console.print("--- sample ---", markup=False)
        for piece in stream(result.model, result.tokenizer, "\n", sample, temperature=0.8, top_k=50,
                            seed=config.seed):
            console.print(piece, end="", markup=False, highlight=False)
        console.print()



# generate (model/generation half of the LM issue)
