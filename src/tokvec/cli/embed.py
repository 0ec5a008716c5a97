"""`tokvec embed`: text -> pieces -> ids -> vectors, stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import SEED_SENTENCES, _preview, app, out, read_text_file


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

    from ..embedding import InputEmbedding

    texts = text or SEED_SENTENCES
    train_texts = [read_text_file(corpus, encoding)] if corpus else texts
    from ..tokenizers import build_tokenizer

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
