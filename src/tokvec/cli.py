"""The ``tokvec`` command line. Thin: parse, call the library, print.

Every error a user can cause prints one line (``tokvec: error: ...``) and exits 2; no traceback.
"""

from __future__ import annotations

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
        yield lambda n=1: bar.advance(task, n)


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
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise CLIError(f"{path} is not valid {encoding} at byte offset {e.start}; "
                       f"pass --encoding (e.g. --encoding gb18030 for a GBK Chinese file)") from None
    except LookupError:
        raise CLIError(f"unknown text encoding {encoding!r}; try utf-8, gb18030, latin-1") from None


def _build_tokenizer(kind: str, texts: list[str]):
    from .tokenizers import CharTokenizer, WordTokenizer, load_tokenizer

    if kind == "char":
        return CharTokenizer.train(texts)
    if kind == "word":
        return WordTokenizer.train(texts)
    if Path(kind).is_file():
        return load_tokenizer(kind)
    raise CLIError(f"unknown tokenizer {kind!r}; use char, word, or the path of a saved tokenizer file")


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
    positional: str = typer.Option("sinusoidal", "--positional", help="Positional scheme name."),
    max_len: int = typer.Option(5000, "--max-len", help="Positions precomputed (sinusoidal grows past it)."),
    scale: bool = typer.Option(False, "--scale/--no-scale", help="Multiply token vectors by sqrt(d_model)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random embedding table."),
) -> None:
    """Show text -> pieces -> ids -> (batch_size, seq_length, d_model) vectors, stage by stage."""
    import torch

    from .embedding import InputEmbedding

    texts = text or SEED_SENTENCES
    train_texts = [read_text_file(corpus, encoding)] if corpus else texts
    tok = _build_tokenizer(tokenizer, train_texts)
    torch.manual_seed(seed)
    emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=d_model, positional=positional, max_len=max_len,
                         dropout=0.0, scale=scale, padding_idx=tok.pad_id).eval()
    out.print(f"[bold]tokenizer[/] {type(tok).__name__}  vocab_size={tok.vocab_size}   "
              f"[bold]embedding table[/] (vocab_size, d_model) = ({tok.vocab_size}, {d_model})   "
              f"[bold]positional[/] {positional}")
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


# --- language-model commands (LM issue): train, generate, classify ---


# --- visualisation commands (viz issue): plot, neighbors, trace, report ---


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``tokvec`` script: run the app, turn tokvec errors into one line + exit 2."""
    try:
        app(args=argv, prog_name="tokvec")
    except (TokvecError, OSError) as e:
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{message}: {e.filename}"
        err.print(f"tokvec: error: {message}", markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("tokvec: interrupted", markup=False)
        sys.exit(130)
