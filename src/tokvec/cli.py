"""The ``tokvec`` command line. Thin: parse, call the library, print.

Every error a user can cause prints one line (``tokvec: error: ...``) and exits 2; no traceback.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import TokvecError

app = typer.Typer(
    name="tokvec",
    help="Text -> token ids -> the vectors a Transformer reads, and on to a language model.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SEED_SENTENCES = ["你好好嗎嗎", "小沈阳江西演唱会邀请了,"]


class CLIError(TokvecError):
    """A problem with the command line itself (a missing file, conflicting flags)."""


@contextmanager
def progress_bar(total: Optional[float], description: str) -> Iterator[Callable[[float], None]]:
    """The one progress helper: yields ``advance(n)``. Draws on stderr, only when it is a terminal."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        # fields: e.g. description="loss 1.23" to update the text as the task runs
        yield lambda n=1, **fields: bar.update(task, advance=n, **fields)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"tokvec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """tokvec: see every stage from text to vectors."""


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """Read a whole corpus file, turning decode failures into a one-line error naming the offset."""
    if not path.is_file():
        raise CLIError(f"no such file: {path}")
    from .data.corpus import read_text  # lazily: keeps `tokvec --help` free of numpy

    return read_text(path, encoding)


def _preview(x, rows: int = 4, cols: int = 6) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("pos")
    for j in range(min(cols, x.shape[-1])):
        table.add_column(f"d{j}", justify="right")
    if x.shape[-1] > cols:
        table.add_column("…")
    for i in range(min(rows, x.shape[0])):
        cells = [f"{float(v):+.4f}" for v in x[i, :cols]]
        table.add_row(str(i), *cells, *(["…"] if x.shape[-1] > cols else []))
    return table


@app.command()
def embed(
    text: list[str] = typer.Argument(None, help="Text to embed (default: the seed sentences)."),
    d_model: int = typer.Option(64, "--d-model", help="Width of each vector."),
    tokenizer: str = typer.Option("char", "--tokenizer", "-t", help="char, word, or a saved tokenizer file."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Train the tokenizer on this file "
                                          "(default: on the text itself)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --corpus."),
    positional: str = typer.Option("sinusoidal", "--positional", help="Positional scheme name (schemes that act "
                                   "inside attention, like rope, add nothing at this stage)."),
    heads: int = typer.Option(4, "--heads", help="Attention heads (sizes the attention-level schemes)."),
    max_len: int = typer.Option(5000, "--max-len", help="Positions precomputed (sinusoidal grows past it)."),
    scale: bool = typer.Option(False, "--scale/--no-scale", help="Multiply token vectors by sqrt(d_model)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random embedding table."),
) -> None:
    """Show text -> pieces -> ids -> (batch_size, seq_length, d_model) vectors, stage by stage."""
    import torch

    from .embedding import InputEmbedding

    texts = text or SEED_SENTENCES
    train_texts = [read_text_file(corpus, encoding)] if corpus else texts
    from .train import build_tokenizer

    tok = build_tokenizer(tokenizer, train_texts)
    torch.manual_seed(seed)
    emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=d_model, positional=positional, max_len=max_len,
                         dropout=0.0, scale=scale, padding_idx=tok.pad_id, n_heads=heads).eval()
    out.print(f"[bold]tokenizer[/] {type(tok).__name__}  vocab_size={tok.vocab_size}   "
              f"[bold]embedding table[/] (vocab_size, d_model) = ({tok.vocab_size}, {d_model})   "
              f"[bold]positional[/] {positional}"
              + ("" if emb.positional.acts_on == "input" else f" (acts on {emb.positional.acts_on}: nothing added here)"))
    for t in texts:
        pieces = tok.tokens(t)
        ids = tok.encode(t)
        batch = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            tokvecs = emb.token(batch)
            x = emb(batch)
        out.print()
        out.print(f"[bold]text[/]    {t!r}   ({len(t)} characters)")
        out.print(f"[bold]pieces[/]  {pieces}")
        out.print(f"[bold]ids[/]     {ids}")
        out.print(f"[bold]stages[/]  ids (batch_size, seq_length) = {tuple(batch.shape)}"
                  f"  ->  token vectors {tuple(tokvecs.shape)}"
                  f"  ->  + positional, dropout: (batch_size, seq_length, d_model) = {tuple(x.shape)}")
        if x.shape[1]:
            out.print(_preview(x[0]))


# --- tokenizer commands (BPE issue): tokenizer train, tokenize, encode ---
tokenizer_app = typer.Typer(help="Train and inspect tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")


def _corpus_args(corpus: Optional[list[str]], extra: Optional[list[str]]) -> list[str]:
    """--corpus values plus bare arguments (a shell-expanded ``--corpus data/*.txt`` gives both)."""
    items = list(corpus or []) + list(extra or [])
    if not items:
        raise CLIError("no corpus given; pass --corpus FILE|DIR|GLOB (more than one allowed)")
    return items


def _load_tokenizer_arg(path: str):
    from .tokenizers import load_tokenizer

    if not Path(path).is_file():
        raise CLIError(f"no tokenizer file at {path}; train one with `tokvec tokenizer train ... --out {path}`")
    return load_tokenizer(path)


def _allowed_special(tok, allow: Optional[list[str]]):
    if not allow:
        return frozenset()
    return "all" if "all" in allow else frozenset(allow)


@tokenizer_app.command("train")
def tokenizer_train(
    files: Optional[list[str]] = typer.Argument(None, help="More corpus files (what a shell glob expands to)."),
    corpus: Optional[list[str]] = typer.Option(None, "--corpus", "-c", help="Corpus file, directory or glob; repeatable."),
    vocab_size: int = typer.Option(8192, "--vocab-size", help="Tokens in all: 256 bytes + merges + specials."),
    pattern: str = typer.Option("cl100k", "--pattern", help="Pre-tokenisation: gpt2, cl100k, o200k or a regex."),
    special: Optional[list[str]] = typer.Option(None, "--special", help="A special token (ids after the merges); repeatable."),
    min_frequency: int = typer.Option(2, "--min-frequency", help="Merge only pairs seen at least this often."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus (e.g. gb18030)."),
    allow_smaller: bool = typer.Option(False, "--allow-smaller", help="Keep a smaller vocabulary if merges run out."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Where to save the tokenizer (JSON; .tiktoken writes ranks only)."),
) -> None:
    """Train a byte-level BPE tokenizer on a corpus (streamed; HF tokenizers' trainer as the engine)."""
    import time

    from .data.textstream import corpus_bytes, expand_corpus
    from .tokenizers.bpe import BPETokenizer

    paths = expand_corpus(_corpus_args(corpus, files))
    start = time.perf_counter()
    with progress_bar(corpus_bytes(paths), "reading + counting") as advance:
        tok = BPETokenizer.train(paths, vocab_size=vocab_size, pattern=pattern, special_tokens=special or [],
                                 min_frequency=min_frequency, encoding=encoding, allow_smaller=allow_smaller,
                                 progress=advance)
    if out_path.suffix.lower() == ".tiktoken":
        tok.save_tiktoken(out_path)
    else:
        tok.save(out_path)
    out.print(f"trained BPE vocab_size={tok.vocab_size} ({tok.n_ranks - 256} merges, {len(tok.special_tokens)} "
              f"specials, pattern {tok.pattern}) on {len(paths)} file(s), {corpus_bytes(paths) / 1e6:.1f} MB in "
              f"{time.perf_counter() - start:.1f} s -> {out_path}")


@tokenizer_app.command("export")
def tokenizer_export(
    tokenizer: str = typer.Argument(..., help="A tokenizer file (tokvec JSON, .tiktoken or tokenizer.json)."),
    format_: str = typer.Option(..., "--format", help="hf (tokenizer.json + tokenizer_config.json in a directory) "
                                "or tiktoken (a rank file; BPE only)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Directory (hf) or .tiktoken file (tiktoken)."),
) -> None:
    """Write a tokenizer for other tools: Hugging Face AutoTokenizer or tiktoken, with the same ids."""
    tok = _load_tokenizer_arg(tokenizer)
    if format_ == "hf":
        path = tok.save_hf(out_path)
        out.print(f"wrote {path} and tokenizer_config.json; load with "
                  f"transformers.AutoTokenizer.from_pretrained({str(out_path)!r})", markup=False, soft_wrap=True)
    elif format_ == "tiktoken":
        if not hasattr(tok, "save_tiktoken"):
            raise CLIError(f"a {tok.kind} tokenizer has no tiktoken form (tiktoken is byte-level BPE); "
                           f"use --format hf")
        tok.save_tiktoken(out_path)
        out.print(f"wrote {out_path} ({tok.n_ranks} ranks; the pattern {tok.pattern!r} and the special tokens "
                  f"{sorted(tok.special_tokens)} are not part of the format: pass them to tiktoken.Encoding)",
                  markup=False, soft_wrap=True)
    else:
        raise CLIError(f"--format {format_!r} is not a tokenizer format; use hf or tiktoken")


@app.command()
def tokenize(
    text: list[str] = typer.Argument(None, help="Text to tokenize (default: the seed sentences)."),
    tokenizer: str = typer.Option(..., "--tokenizer", "-t", help="A tokenizer file (tokvec JSON, .tiktoken, tokenizer.json)."),
    allow_special: Optional[list[str]] = typer.Option(None, "--allow-special", help="Encode this special token "
                                                      "(or 'all') as its id; repeatable."),
) -> None:
    """Show how text splits: pieces (bytes shown readably), ids, and tokens per character."""
    tok = _load_tokenizer_arg(tokenizer)
    allowed = _allowed_special(tok, allow_special)
    for t in text or SEED_SENTENCES:
        if hasattr(tok, "special_tokens"):
            ids = tok.encode(t, allowed_special=allowed)
            pieces = tok.tokens(t, allowed_special=allowed)
        else:
            ids, pieces = tok.encode(t), tok.tokens(t)
        out.print("[bold]text[/]    ", end="")
        out.print(f"{t!r}   ({len(t)} characters, {len(t.encode('utf-8'))} bytes)", markup=False)
        out.print("[bold]pieces[/]  ", end="")
        out.print(repr(pieces), markup=False)
        out.print(f"[bold]ids[/]     {ids}")
        out.print(f"[bold]tokens/char[/] {len(ids) / max(len(t), 1):.3f}   ({len(ids)} tokens)")
        out.print()


@app.command()
def encode(
    files: Optional[list[str]] = typer.Argument(None, help="More corpus files (what a shell glob expands to)."),
    tokenizer: str = typer.Option(..., "--tokenizer", "-t", help="A tokenizer file."),
    corpus: Optional[list[str]] = typer.Option(None, "--corpus", "-c", help="Corpus file, directory or glob; repeatable."),
    out_path: Path = typer.Option(..., "--out", "-o", help="Token file to write (.bin; a .bin.json sidecar goes next to it)."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus (e.g. gb18030)."),
    eot: Optional[str] = typer.Option(None, "--eot", help="Special token appended after each file, e.g. '<|endoftext|>'."),
    allow_special: Optional[list[str]] = typer.Option(None, "--allow-special", help="Special token (or 'all') "
                                                      "to encode as its id when the corpus spells it; repeatable."),
    threads: int = typer.Option(0, "--threads", help="Encoding threads (0: one per CPU)."),
) -> None:
    """Stream a corpus into a flat token file (uint16 or uint32 ids) + JSON sidecar, atomically."""
    import time

    from .data.textstream import corpus_bytes, expand_corpus
    from .data.tokenfile import write_token_file

    tok = _load_tokenizer_arg(tokenizer)
    paths = expand_corpus(_corpus_args(corpus, files))
    start = time.perf_counter()
    with progress_bar(corpus_bytes(paths), "encoding") as advance:
        info = write_token_file(tok, paths, out_path, encoding=encoding, eot=eot,
                                allowed_special=_allowed_special(tok, allow_special), num_threads=threads or None,
                                progress=advance)
    secs = time.perf_counter() - start
    out.print(f"{info['count']} tokens ({info['dtype']}) from {len(paths)} file(s), {info['corpus_bytes'] / 1e6:.1f} MB "
              f"in {secs:.1f} s ({info['corpus_bytes'] / 1e6 / max(secs, 1e-9):.1f} MB/s) -> {out_path}")


# --- positional commands (positional issue): positional compare ---
positional_app = typer.Typer(help="Positional encodings: compare schemes.", no_args_is_help=True)
app.add_typer(positional_app, name="positional")


@positional_app.command("compare")
def positional_compare(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Text file or directory (default: the Python "
                                          "standard library's source)."),
    train_len: int = typer.Option(128, "--train-len", help="Context length every model trains at."),
    eval_lens: str = typer.Option("128,256,512,1024", "--eval-lens", help="Lengths to score, comma separated."),
    schemes: str = typer.Option("all", "--schemes", help="all, or a comma list such as rope,alibi,t5."),
    max_steps: int = typer.Option(300, "--max-steps", help="Training steps per scheme."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (torch's default)."),
    out_dir: Path = typer.Option(Path("runs/positional-compare"), "--out", help="Where the CSV and plot go."),
) -> None:
    """Train the same small model once per positional scheme; show perplexity at longer lengths."""
    from .positional.compare import CompareConfig, compare, format_table, parse_lengths, parse_schemes, plot, write_csv

    if corpus is not None and not corpus.exists():
        raise CLIError(f"no such file or directory: {corpus}")
    config = CompareConfig(corpus=None if corpus is None else str(corpus), train_len=train_len,
                           eval_lens=parse_lengths(eval_lens), schemes=parse_schemes(schemes), max_steps=max_steps,
                           threads=threads).validate()
    err.print(f"tokvec positional compare: {len(config.schemes)} schemes, d_model {config.d_model}, "
              f"{config.n_layers} layers, {config.max_steps} steps each, trained at {config.train_len}", markup=False)
    with progress_bar(len(config.schemes) * (1 + len(config.eval_lens)), "comparing") as advance:
        rows = compare(config, progress=lambda message: advance(1, description=message))
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_csv(rows, out_dir / "compare.csv")
    png_path = plot(rows, out_dir / "compare.png", train_len=config.train_len)
    out.print(format_table(rows), markup=False)
    out.print(f"wrote {csv_path} and {png_path}", markup=False)



# --- language-model commands (LM issue): train, generate, classify ---

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
) -> None:
    """Train a GPT language model on a corpus; checkpoints, tokenizer and metrics go to --out.

    On several processes: torchrun --nproc_per_node=N -m tokvec train ... (only rank 0 prints)."""
    import os

    from .train import TrainConfig, effective_batch, train as run_training

    flags = _train_overrides(corpus=None if corpus is None else str(corpus), encoding=encoding,
                             tokenizer=tokenizer, preset=preset, positional=positional, d_model=d_model,
                             n_layers=layers, n_heads=heads, context_length=context, norm=norm,
                             activation=activation, max_steps=max_steps,
                             eval_interval=eval_interval, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
                             seed=seed, compile=compile_, bf16=bf16, threads=threads, strategy=strategy,
                             backend=backend)
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
    params = result.model.num_parameters()
    losses = "" if result.val_loss is None else f"train {result.train_loss:.4f}  val {result.val_loss:.4f}  "
    console.print(f"done: step {result.step}  {losses}{result.tokens_per_s:,.0f} tok/s  {params:,} parameters"
                  f"  -> {run_dir}", markup=False, soft_wrap=True)
    if sample > 0:
        from .generate import stream

        console.print("--- sample ---", markup=False)
        for piece in stream(result.model, result.tokenizer, "\n", sample, temperature=0.8, top_k=50,
                            seed=config.seed):
            console.print(piece, end="", markup=False, highlight=False)
        console.print()



# generate (model/generation half of the LM issue)
@app.command("generate")
def generate_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory written by `tokvec train`."),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue (default: start from <bos>)."),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", "-n", help="Tokens to generate."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature; 0 = greedy."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample among the k most likely tokens."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus: the most likely tokens holding p of "
                                          "the probability, p in (0, 1]."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="> 1 discourages repeats (CTRL)."),
    stop: Optional[list[str]] = typer.Option(None, "--stop", help="End before this text (repeatable; \\n and "
                                             "\\t are read as newline and tab)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sampler (same seed, same text)."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="A prompt loop: type a prompt, watch "
                                     "the text stream; an empty line or Ctrl-D ends it."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Use the KV cache (much faster)."),
) -> None:
    """Sample text from a trained run; the text streams as it is produced."""
    import warnings

    from .checkpoint import load_run
    from .generate import check_options, encode_prompt, stream

    check_options(max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                  repetition_penalty=repetition_penalty)  # bad flags fail before the model loads
    if not run.is_dir():
        raise CLIError(f"no run directory at {run}; train one with: tokvec train --out {run}")
    model, tok, _ = load_run(run)
    options = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
                   stop=[s.replace("\\n", "\n").replace("\\t", "\t") for s in stop] if stop else None,
                   seed=seed, use_cache=cache)

    def complete(text: str) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            encode_prompt(tok, text)  # unknown characters: <unk>, with a warning shown once here
        for w in caught:
            err.print(f"tokvec: warning: {w.message}", markup=False, soft_wrap=True)
        sys.stdout.write(text)
        sys.stdout.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for piece in stream(model, tok, text, max_new_tokens, **options):
                sys.stdout.write(piece)
                sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()

    if not interactive:
        complete(prompt)
        return
    err.print(f"tokvec generate: {run} ({model.num_parameters():,} parameters, context "
              f"{model.config.context_length} tokens). Type a prompt; an empty line or Ctrl-D ends.",
              markup=False, soft_wrap=True)
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            sys.stdout.write("\n")
            return
        if not text:
            return
        try:
            complete(text)
        except KeyboardInterrupt:  # stop this answer, keep the loop
            sys.stdout.write("\n")


classify_app = typer.Typer(help="Sequence classification on the same embeddings and blocks (CSV of text,label).",
                           no_args_is_help=True)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
def classify_train(
    csv_path: Path = typer.Option(..., "--csv", help="CSV with a header; one text and one label per row."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the CSV."),
    tokenizer: str = typer.Option("char", "--tokenizer", "-t", help="char, word or a saved tokenizer file."),
    positional: str = typer.Option("learned", "--positional"),
    d_model: int = typer.Option(64, "--d-model"),
    layers: int = typer.Option(2, "--layers"),
    heads: int = typer.Option(4, "--heads"),
    context: int = typer.Option(128, "--context", help="Texts are cut to this many tokens."),
    pooling: str = typer.Option("last", "--pooling", help="last (default), mean or first."),
    max_steps: int = typer.Option(300, "--max-steps"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(3e-3, "--lr"),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Rows held out for accuracy."),
    seed: int = typer.Option(1337, "--seed"),
    out_dir: Path = typer.Option(Path("runs/classifier"), "--out"),
) -> None:
    """Train a sequence classifier on labelled text; prints train/val accuracy."""
    from .classify import ClassifyConfig, train_classifier

    config = ClassifyConfig(csv=str(csv_path), text_column=text_column, label_column=label_column, encoding=encoding,
                            tokenizer=tokenizer, positional=positional, d_model=d_model, n_layers=layers,
                            n_heads=heads, context=context, pooling=pooling, max_steps=max_steps,
                            batch_size=batch_size, lr=lr, val_fraction=val_fraction, seed=seed, out=str(out_dir))
    with progress_bar(max_steps, "classifier") as advance:
        result = train_classifier(config, progress=lambda step, total, info: advance(
            1, description=f"loss {info['loss']:.3f}"))
    val = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.3f}"
    out.print(f"done: {len(result.labels)} labels {result.labels}  train accuracy {result.train_accuracy:.3f}  "
              f"val accuracy {val}  final loss {result.losses[-1]:.4f}  -> {result.run_dir}", markup=False,
              soft_wrap=True)


@classify_app.command("predict")
def classify_predict(
    texts: list[str] = typer.Argument(..., help="Texts to classify."),
    run: Path = typer.Option(..., "--run", help="A run written by tokvec classify train."),
) -> None:
    """Print the predicted label and its probability for each text."""
    from .classify import load_classifier

    clf = load_classifier(run)
    probs = clf.probabilities(texts)
    for text, p in zip(texts, probs):
        i = int(p.argmax())
        out.print(f"{clf.labels[i]}  {float(p[i]):.3f}  {text}", markup=False, soft_wrap=True)


# --- visualisation commands (viz issue): plot, neighbors, trace, report ---

plot_app = typer.Typer(help="Draw a stage as PNG (or SVG when --out ends in .svg).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


def _open_run(run: Optional[Path], command: str):
    from .viz.report import open_run

    if run is None:
        raise CLIError(f"{command} needs a trained run: pass --run DIR (a directory written by `tokvec train`)")
    return open_run(run)


def _save_plot(fig, out_path: Path) -> None:
    from .viz import save_figure

    path = save_figure(fig, out_path)
    out.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    info = fig.tokvec_info
    if info.get("needs_cjk") and not info.get("font"):
        err.print(f"tokvec: warning: {info['font_note']}", markup=False, soft_wrap=True)
    else:
        out.print(info["font_note"], markup=False, soft_wrap=True)


@plot_app.command("pe")
def plot_pe_cmd(
    positional: str = typer.Option("sinusoidal", "--positional", help="Additive scheme: sinusoidal, learned."),
    d_model: int = typer.Option(128, "--d-model", help="Width of each position vector."),
    max_len: int = typer.Option(200, "--max-len", help="Positions drawn (rows)."),
    run: Optional[Path] = typer.Option(None, "--run", help="Draw this run's own (e.g. learned) position vectors."),
    out_path: Path = typer.Option(Path("pe.png"), "--out", "-o", help="Output file (.png or .svg)."),
) -> None:
    """Heatmap of the position vectors: position × dimension."""
    from .viz import plot_pe

    if run is not None:
        data = _open_run(run, "plot pe")
        fig = plot_pe(data.model.embed.positional, d_model=data.model.embed.d_model,
                      max_len=min(max_len, data.model.config.context_length))
    else:
        fig = plot_pe(positional, d_model=d_model, max_len=max_len)
    _save_plot(fig, out_path)


@plot_app.command("pe-similarity")
def plot_pe_similarity_cmd(
    positional: str = typer.Option("sinusoidal", "--positional", help="Any scheme name (rope, alibi, ...)."),
    n_positions: int = typer.Option(64, "--n-positions", help="Positions compared."),
    d_model: int = typer.Option(64, "--d-model"),
    heads: int = typer.Option(4, "--heads", help="Attention heads (bias schemes differ per head)."),
    method: str = typer.Option("auto", "--method", help="auto (the scheme's own hooks) or attention (measure a real attention layer)."),
    run: Optional[Path] = typer.Option(None, "--run", help="Use this run's scheme and sizes."),
    out_path: Path = typer.Option(Path("pe-similarity.png"), "--out", "-o"),
) -> None:
    """PE(i)·PE(j), or the score a scheme adds to attention, against position and distance."""
    from .viz import plot_pe_similarity

    if run is not None:
        model = _open_run(run, "plot pe-similarity").model
        fig = plot_pe_similarity(model.embed.positional, n_positions=n_positions, d_model=model.config.d_model,
                                 n_heads=model.config.n_heads, method=method)
    else:
        fig = plot_pe_similarity(positional, n_positions=n_positions, d_model=d_model, n_heads=heads, method=method)
    _save_plot(fig, out_path)


@plot_app.command("embeddings")
def plot_embeddings_cmd(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    top: int = typer.Option(500, "--top", help="Rows drawn: the first N non-special ids."),
    out_path: Path = typer.Option(Path("embeddings.png"), "--out", "-o"),
) -> None:
    """2-D PCA of the learned token embedding table, each point labelled with its token."""
    from .viz import embedding_table, plot_embeddings, token_strings, top_ids

    data = _open_run(run, "plot embeddings")
    fig = plot_embeddings(embedding_table(data.model), token_strings(data.tokenizer),
                          ids=top_ids(data.tokenizer, top))
    _save_plot(fig, out_path)


@plot_app.command("attention")
def plot_attention_cmd(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    text: str = typer.Option(..., "--text", help="Text the model reads."),
    layer: int = typer.Option(0, "--layer", help="Layer to draw (0-based)."),
    out_path: Path = typer.Option(Path("attention.png"), "--out", "-o"),
) -> None:
    """Attention weights of one layer on a text: heads × (query × key)."""
    from .viz import plot_attention
    from .viz.analysis import attention_maps

    data = _open_run(run, "plot attention")
    weights, pieces = attention_maps(data.model, data.tokenizer, text, layer=layer)
    _save_plot(plot_attention(weights, pieces, layer=layer), out_path)


@plot_app.command("loss")
def plot_loss_cmd(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory (reads its metrics.jsonl)."),
    metrics: Optional[Path] = typer.Option(None, "--metrics", help="A metrics.jsonl file instead of --run."),
    out_path: Path = typer.Option(Path("loss.png"), "--out", "-o"),
) -> None:
    """Train and validation loss curves from metrics.jsonl."""
    from .viz import plot_loss
    from .viz.report import check_run_dir

    if metrics is None:
        if run is None:
            raise CLIError("plot loss needs --run DIR or --metrics FILE")
        check_run_dir(run)
        metrics = run / "metrics.jsonl"
    _save_plot(plot_loss(metrics), out_path)


@app.command()
def neighbors(
    token: str = typer.Argument(..., help="A token of the run's vocabulary (or #ID for a token id)."),
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    k: int = typer.Option(10, "-k", "--k", help="How many neighbours."),
) -> None:
    """Nearest tokens to TOKEN by cosine similarity of their embedding rows."""
    from .viz import display_token, embedding_table, neighbors as nearest, token_strings

    data = _open_run(run, "neighbors")
    query: str | int = int(token[1:]) if token.startswith("#") and token[1:].isdigit() else token
    found = nearest(embedding_table(data.model), token_strings(data.tokenizer), query, k=k)
    table = Table(box=None, header_style="bold")
    for col, justify in (("rank", "right"), ("token", "left"), ("id", "right"), ("cosine", "right")):
        table.add_column(col, justify=justify)
    for rank, n in enumerate(found, 1):
        table.add_row(str(rank), display_token(n.token, 24), str(n.id), f"{n.similarity:+.4f}")
    out.print(f"nearest to {token!r} in {run}:")
    out.print(table)


@app.command()
def trace(
    text: str = typer.Argument("你好好嗎嗎", help="Text to follow through the pipeline."),
    run: Optional[Path] = typer.Option(None, "--run", help="Use a trained run's tokenizer and embedding."),
    tokenizer: str = typer.Option("char", "--tokenizer", "-t", help="Without --run: char, word, or a file."),
    d_model: int = typer.Option(8, "--d-model", help="Without --run: width of each vector."),
    positional: str = typer.Option("sinusoidal", "--positional", help="Without --run: positional scheme."),
    seed: int = typer.Option(0, "--seed", help="Without --run: seed of the random table."),
) -> None:
    """Follow TEXT: text -> pieces -> ids -> embedding rows -> +PE, with the shape at each stage."""
    import torch

    from .embedding import InputEmbedding
    from .viz import trace as run_trace

    if run is not None:
        data = _open_run(run, "trace")
        tok, emb = data.tokenizer, data.model.embed
    else:
        from .train import build_tokenizer

        tok = build_tokenizer(tokenizer, [text])
        torch.manual_seed(seed)
        emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=d_model, positional=positional, dropout=0.0)
    result = run_trace(text, tok, emb)
    for number, stage in enumerate(result.stages, 1):
        out.print(f"[bold]{number}. {stage.name}[/]  shape {stage.shape}")
        out.print(f"   {stage.note}", markup=False, soft_wrap=True)
        value = stage.value
        if stage.name in ("text", "pieces"):
            out.print(f"   {value!r}", markup=False, soft_wrap=True)
        elif stage.name == "ids":
            out.print(f"   {value.tolist()}", markup=False, soft_wrap=True)
        else:
            out.print(_preview(value[0] if value.dim() == 3 else value))


@app.command()
def report(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    out_path: Path = typer.Option(Path("report.html"), "--out", "-o", help="Output HTML file."),
    val_text: Optional[Path] = typer.Option(None, "--val-text", help="Text file for tokenizer stats "
                                            "(default: the run's own validation text when it records one)."),
    prompt: str = typer.Option("", "--prompt", help="Prompt of the generated sample."),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", help="Length of the generated sample."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
) -> None:
    """One self-contained HTML page: config, parameters, tokenizer stats, losses, a sample and the plots."""
    from .viz.report import build_report, write_report

    data = _open_run(run, "report")
    text = read_text_file(val_text) if val_text else None
    page = build_report(data, val_text=text, prompt=prompt or None, max_new_tokens=max_new_tokens, seed=seed)
    path = write_report(page, out_path)
    out.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser")



# Hugging Face import / export (docs/hf.md)
def _bytes_bar(description: str):
    """A progress bar over bytes, as a ``progress(done, total)`` callback for the hf_runs functions."""
    from contextlib import contextmanager

    @contextmanager
    def bar():
        with progress_bar(None, description) as advance:
            seen = {"done": 0}

            def progress(done: int, total: int) -> None:
                advance(done - seen["done"], total=total)
                seen["done"] = done

            yield progress

    return bar()


@app.command("import")
def import_cmd(
    source: Path = typer.Argument(..., help="A local Hugging Face model directory (config.json, model.safetensors, "
                                  "tokenizer.json)."),
    out_dir: Path = typer.Option(..., "--out", help="The run directory to create."),
    tokenizer: Optional[Path] = typer.Option(None, "--tokenizer", "-t", help="Use this tokenizer file instead of "
                                             "SOURCE/tokenizer.json (ids must match the model)."),
) -> None:
    """Import a GPT-2, Llama, Mistral or Qwen2 checkpoint as a tokvec run (generate, plot, trace, train --init-from)."""
    from .hf_runs import import_hf

    if not source.is_dir():
        raise CLIError(f"no model directory at {source}; download one first (tokvec fetches nothing)")
    with _bytes_bar("reading weights") as progress:
        run = import_hf(source, out_dir, tokenizer=tokenizer, progress=progress)
    from .checkpoint import read_run_config

    model = read_run_config(run)["model"]
    out.print(f"imported {source} -> {run} ({model['n_layers']} layers, d_model {model['d_model']}, "
              f"{model['positional']}, vocab {model['vocab_size']})", markup=False, soft_wrap=True)


@app.command("export")
def export_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory to export."),
    format_: str = typer.Option("hf", "--format", help="hf: a Hugging Face model directory."),
    out_dir: Path = typer.Option(..., "--out", help="Directory to write (new or empty)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier Hugging Face export in --out."),
) -> None:
    """Export a run as a directory transformers loads: AutoModelForCausalLM / AutoTokenizer.from_pretrained(OUT)."""
    from .hf_runs import export_hf

    if format_ != "hf":
        raise CLIError(f"--format {format_!r} is not an export format; use --format hf "
                       f"(tokenizers alone: tokvec tokenizer export --format hf|tiktoken)")
    with _bytes_bar("writing weights") as progress:
        path = export_hf(run, out_dir, overwrite=force, progress=progress)
    arch = read_json_file(path / "config.json")["architectures"][0]
    out.print(f"exported {run} -> {path} ({arch}); load it with "
              f"transformers.AutoModelForCausalLM.from_pretrained({str(path)!r})", markup=False, soft_wrap=True)


def read_json_file(path: Path):
    from ._io import read_json

    return read_json(path)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``tokvec`` script: run the app, turn tokvec errors into one line + exit 2."""
    try:
        app(args=argv, prog_name="tokvec")
    except (TokvecError, OSError) as e:
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{message}: {e.filename}"
        err.quiet = False  # a rank silenced under torchrun still reports its own failure
        rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else ""
        err.print(f"tokvec: error: {rank}{message}", markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("tokvec: interrupted", markup=False)
        sys.exit(130)
