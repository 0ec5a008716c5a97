"""`tokvec embed`: text -> pieces -> ids -> vectors, stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import DEVICE_HELP, SEED_SENTENCES, _preview, announce_device, app, out, read_text_file, resolve_device_flag


@app.command()
def embed(
    text: list[str] = typer.Argument(None, help="Text to embed (default: the seed sentences)."),
    d_model: int = typer.Option(64, "--d-model", help="Width of each vector."),
    tokenizer: str = typer.Option(
        "char",
        "--tokenizer",
        "-t",
        help="char, word, bpe:N, a tiktoken encoding (cl100k_base, o200k_base, ...) or a saved tokenizer file.",
    ),
    corpus: Optional[Path] = typer.Option(
        None, "--corpus", help="Train the tokenizer on this file (default: on the text itself)."
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --corpus."),
    context: Optional[int] = typer.Option(
        None,
        "--context",
        help="Pad or crop every text to this many tokens "
        "(the model's context length); default: each text's own length.",
    ),
    positional: str = typer.Option(
        "sinusoidal",
        "--positional",
        help="Positional scheme name (schemes that act inside attention, like rope, add nothing at this stage).",
    ),
    heads: int = typer.Option(4, "--heads", help="Attention heads (sizes the attention-level schemes)."),
    max_len: int = typer.Option(5000, "--max-len", help="Positions precomputed (sinusoidal grows past it)."),
    scale: bool = typer.Option(False, "--scale/--no-scale", help="Multiply token vectors by sqrt(d_model)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the random embedding table."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Show text -> pieces -> ids -> (batch_size, seq_length, d_model) vectors, stage by stage."""
    import torch

    from ..embedding import InputEmbedding, fit_to_context

    texts = text or SEED_SENTENCES
    train_texts = [read_text_file(corpus, encoding)] if corpus else texts
    from .._checks import check_seed
    from ..tokenizers import build_tokenizer

    check_seed("--seed", seed)
    tok = build_tokenizer(tokenizer, train_texts)
    rows = tok.text_vocab_size  # plain text never encodes to a special token: the table needs no row for them
    pad_id = tok.pad_id if tok.pad_id is not None and tok.pad_id < rows else None
    where = resolve_device_flag(device, "embed", announce=False)
    torch.manual_seed(seed)  # the table is drawn on the CPU: the same vectors on every device
    emb = (
        InputEmbedding(
            vocab_size=rows,
            d_model=d_model,
            positional=positional,
            max_len=max_len,
            dropout=0.0,
            scale=scale,
            padding_idx=pad_id,
            n_heads=heads,
        )
        .eval()
        .to(where)
    )
    announce_device(device, where, "embed")
    out.print(
        f"[bold]tokenizer[/] {type(tok).__name__}  vocab_size={tok.vocab_size}   "
        f"[bold]embedding table[/] (vocab_size, d_model) = ({rows}, {d_model}): "
        f"{rows * d_model:,} parameters"
        + (
            f" (plain-text ids 0..{rows - 1}; ids {rows}..{tok.vocab_size - 1} are special tokens or unused, "
            f"never produced here)"
            if rows < tok.vocab_size
            else ""
        )
        + f"   [bold]positional[/] {positional}"
        + ("" if emb.positional.acts_on == "input" else f" (acts on {emb.positional.acts_on}: nothing added here)"),
        soft_wrap=True,
    )
    for t in texts:
        pieces = tok.tokens(t)
        ids = tok.encode(t)
        out.print()
        out.print("[bold]text[/]    ", end="")
        out.print(f"{t!r}   ({len(t)} characters)", markup=False)
        out.print("[bold]pieces[/]  ", end="")
        out.print(repr(pieces), markup=False, soft_wrap=True)
        out.print(f"[bold]ids[/]     {ids}   ({len(ids)} tokens)", soft_wrap=True)
        padding = None
        if context is not None:
            fitted = fit_to_context(ids, context, pad_id=0 if pad_id is None else pad_id)
            ids, padding = fitted.ids, torch.tensor([fitted.padding_mask])
            out.print(
                f"[bold]context[/] {context}: {fitted.describe(pad_name=None if pad_id is None else '<pad>')}",
                soft_wrap=True,
            )
            out.print(f"[bold]ids[/]     {ids}", soft_wrap=True)
        batch = torch.tensor([ids], dtype=torch.long, device=where)
        with torch.no_grad():
            tokvecs = emb.token(batch)
            x = emb(batch, padding_mask=None if padding is None else padding.to(where)).cpu()
        out.print(
            f"[bold]stages[/]  ids (batch_size, seq_length) = {tuple(batch.shape)}"
            f"  ->  token vectors {tuple(tokvecs.shape)}"
            f"  ->  + positional, dropout: (batch_size, seq_length, d_model) = {tuple(x.shape)}",
            soft_wrap=True,
        )
        if x.shape[1]:
            start = padding[0].tolist().index(True) if padding is not None and bool(padding.any()) else None
            out.print(_preview(x[0], also=() if start is None else (start, x.shape[1] - 1)))
