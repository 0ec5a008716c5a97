"""`tokvec neighbors`, `tokvec trace`: look inside a run's embedding table and pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from . import DEVICE_HELP, CLIError, _open_run, _preview, announce_device, app, out, resolve_device_flag


@app.command()
def neighbors(
    token: str = typer.Argument(
        ..., help="A token of the run's vocabulary (or #ID for a token id), or a word of --vectors."
    ),
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    vectors: Optional[Path] = typer.Option(
        None, "--vectors", help="A GloVe / word2vec / fastText file instead of a run."
    ),
    k: int = typer.Option(10, "-k", "--k", help="How many neighbours."),
) -> None:
    """Nearest tokens to TOKEN by cosine similarity of their embedding rows (or of pretrained word vectors)."""
    if vectors is not None:
        from .vectors import load_vectors, print_words

        if run is not None:
            raise CLIError("pass --run or --vectors, not both")
        wv = load_vectors(vectors)
        print_words(f"nearest to {token!r} in {vectors}:", wv.neighbors(token, k=k))
        return
    from ..viz import display_token, embedding_table, token_strings
    from ..viz import neighbors as nearest

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
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Follow TEXT: text -> pieces -> ids -> embedding rows -> +PE, with the shape at each stage."""
    import torch

    from ..embedding import InputEmbedding
    from ..viz import trace as run_trace

    if run is not None:
        data = _open_run(run, "trace", device)
        tok, emb = data.tokenizer, data.model.embed
    else:
        from .._checks import check_seed
        from ..tokenizers import build_tokenizer

        check_seed("--seed", seed)
        tok = build_tokenizer(tokenizer, [text])
        torch.manual_seed(seed)
        emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=d_model, positional=positional, dropout=0.0)
        emb.to(resolve_device_flag(device, "trace", announce=False))
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
    announce_device(device, emb, "trace")
