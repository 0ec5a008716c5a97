"""`tokvec tokenizer train|export`, `tokvec tokenize`, `tokvec encode`: train, export and use tokenizers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import SEED_SENTENCES, CLIError, app, check_out, out, progress_bar

tokenizer_app = typer.Typer(help="Train and inspect tokenizers.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")


def _corpus_args(corpus: Optional[list[str]], extra: Optional[list[str]]) -> list[str]:
    """--corpus values plus bare arguments (a shell-expanded ``--corpus data/*.txt`` gives both)."""
    items = list(corpus or []) + list(extra or [])
    if not items:
        raise CLIError("no corpus given; pass --corpus FILE|DIR|GLOB (more than one allowed)")
    return items


def _load_tokenizer_arg(path: str):
    from ..tokenizers import load_tokenizer
    from ..tokenizers.tiktoken_names import ENCODING_NAMES

    if not Path(path).is_file() and path not in ENCODING_NAMES:
        raise CLIError(
            f"no tokenizer file at {path}; train one with `tokvec tokenizer train ... --out {path}`, "
            f"or name one of tiktoken's encodings ({', '.join(ENCODING_NAMES)})"
        )
    return load_tokenizer(path)


def _allowed_special(allow: Optional[list[str]]):
    if not allow:
        return frozenset()
    return "all" if "all" in allow else frozenset(allow)


@tokenizer_app.command("train")
def tokenizer_train(
    files: Optional[list[str]] = typer.Argument(None, help="More corpus files (what a shell glob expands to)."),
    corpus: Optional[list[str]] = typer.Option(
        None, "--corpus", "-c", help="Corpus file, directory or glob; repeatable."
    ),
    vocab_size: int = typer.Option(8192, "--vocab-size", help="Tokens in all: 256 bytes + merges + specials."),
    pattern: str = typer.Option("cl100k", "--pattern", help="Pre-tokenisation: gpt2, cl100k, o200k or a regex."),
    special: Optional[list[str]] = typer.Option(
        None, "--special", help="A special token (ids after the merges); repeatable."
    ),
    min_frequency: int = typer.Option(2, "--min-frequency", help="Merge only pairs seen at least this often."),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus (e.g. gb18030)."),
    allow_smaller: bool = typer.Option(False, "--allow-smaller", help="Keep a smaller vocabulary if merges run out."),
    out_path: Path = typer.Option(
        ..., "--out", "-o", help="Where to save the tokenizer (JSON; .tiktoken writes ranks only)."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto (native: tokvec's C trainer; rustbpe where it was not built), native, rustbpe "
        "or hf (Hugging Face tokenizers' BpeTrainer).",
    ),
) -> None:
    """Train a byte-level BPE tokenizer on a corpus (streamed; tokvec's C trainer, rustbpe or HF's)."""
    import time

    from ..textstream import corpus_bytes, expand_corpus
    from ..tokenizers.bpe import BPETokenizer

    items = _corpus_args(corpus, files)
    paths = expand_corpus(items)
    check_out(out_path, [*paths, *(p for p in items if Path(p).is_dir())])
    start = time.perf_counter()
    with (
        progress_bar(corpus_bytes(paths), "reading + counting") as advance,
        progress_bar(None, "merging") as advance_merges,
    ):
        done = {"merges": 0}

        def on_merges(merges: int, total: int) -> None:
            advance_merges(merges - done["merges"], total=total)
            done["merges"] = merges

        tok = BPETokenizer.train(
            paths,
            vocab_size=vocab_size,
            pattern=pattern,
            special_tokens=special or [],
            min_frequency=min_frequency,
            encoding=encoding,
            allow_smaller=allow_smaller,
            progress=advance,
            engine=engine,
            on_merges=on_merges,
        )
    if out_path.suffix.lower() == ".tiktoken":
        tok.save_tiktoken(out_path)
    else:
        tok.save(out_path)
    out.print(
        f"trained BPE vocab_size={tok.vocab_size} ({tok.n_ranks - 256} merges, {len(tok.special_tokens)} "
        f"specials, pattern {tok.pattern}) by {tok.trained_by} on {len(paths)} file(s), {corpus_bytes(paths) / 1e6:.1f} MB in "
        f"{time.perf_counter() - start:.1f} s -> {out_path}"
    )


@tokenizer_app.command("export")
def tokenizer_export(
    tokenizer: str = typer.Argument(..., help="A tokenizer file (tokvec JSON, .tiktoken or tokenizer.json)."),
    format_: str = typer.Option(
        ...,
        "--format",
        help="hf (tokenizer.json + tokenizer_config.json in a directory) or tiktoken (a rank file; BPE only).",
    ),
    out_path: Path = typer.Option(..., "--out", "-o", help="Directory (hf) or .tiktoken file (tiktoken)."),
) -> None:
    """Write a tokenizer for other tools: Hugging Face AutoTokenizer or tiktoken, with the same ids."""
    tok = _load_tokenizer_arg(tokenizer)
    if format_ == "hf":
        path = tok.save_hf(out_path)
        out.print(
            f"wrote {path} and tokenizer_config.json; load with "
            f"transformers.AutoTokenizer.from_pretrained({str(out_path)!r})",
            markup=False,
            soft_wrap=True,
        )
    elif format_ == "tiktoken":
        if not hasattr(tok, "save_tiktoken"):
            raise CLIError(f"a {tok.kind} tokenizer has no tiktoken form (tiktoken is byte-level BPE); use --format hf")
        tok.save_tiktoken(out_path)
        out.print(
            f"wrote {out_path} ({tok.n_ranks} ranks; the pattern {tok.pattern!r} and the special tokens "
            f"{sorted(tok.special_tokens)} are not part of the format: pass them to tiktoken.Encoding)",
            markup=False,
            soft_wrap=True,
        )
    else:
        raise CLIError(f"--format {format_!r} is not a tokenizer format; use hf or tiktoken")


@app.command()
def tokenize(
    text: list[str] = typer.Argument(None, help="Text to tokenize (default: the seed sentences)."),
    tokenizer: str = typer.Option(
        ..., "--tokenizer", "-t", help="A tokenizer file (tokvec JSON, .tiktoken, tokenizer.json)."
    ),
    allow_special: Optional[list[str]] = typer.Option(
        None, "--allow-special", help="Encode this special token (or 'all') as its id; repeatable."
    ),
) -> None:
    """Show how text splits: pieces (bytes shown readably), ids, and tokens per character."""
    tok = _load_tokenizer_arg(tokenizer)
    allowed = _allowed_special(allow_special)
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
    corpus: Optional[list[str]] = typer.Option(
        None, "--corpus", "-c", help="Corpus file, directory or glob; repeatable."
    ),
    out_path: Path = typer.Option(
        ..., "--out", "-o", help="Token file to write (.bin; a .bin.json sidecar goes next to it)."
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the corpus (e.g. gb18030)."),
    eot: Optional[str] = typer.Option(
        None, "--eot", help="Special token appended after each file, e.g. '<|endoftext|>'."
    ),
    allow_special: Optional[list[str]] = typer.Option(
        None,
        "--allow-special",
        help="Special token (or 'all') to encode as its id when the corpus spells it; repeatable.",
    ),
    threads: int = typer.Option(0, "--threads", help="Encoding threads (0: one per CPU)."),
) -> None:
    """Stream a corpus into a flat token file (uint16 or uint32 ids) + JSON sidecar, atomically."""
    import time

    from ..data.tokenfile import write_token_file
    from ..textstream import corpus_bytes, expand_corpus

    tok = _load_tokenizer_arg(tokenizer)
    items = _corpus_args(corpus, files)
    paths = expand_corpus(items)
    sidecar = out_path.with_name(out_path.name + ".json")
    for target in (out_path, sidecar):  # a corpus directory would read the token file as text next time
        check_out(target, [*paths, tokenizer, *(p for p in items if Path(p).is_dir())])
    start = time.perf_counter()
    with progress_bar(corpus_bytes(paths), "encoding") as advance:
        info = write_token_file(
            tok,
            paths,
            out_path,
            encoding=encoding,
            eot=eot,
            allowed_special=_allowed_special(allow_special),
            num_threads=threads or None,
            progress=advance,
        )
    secs = time.perf_counter() - start
    out.print(
        f"{info['count']} tokens ({info['dtype']}) from {len(paths)} file(s), {info['corpus_bytes'] / 1e6:.1f} MB "
        f"in {secs:.1f} s ({info['corpus_bytes'] / 1e6 / max(secs, 1e-9):.1f} MB/s) -> {out_path}"
    )
