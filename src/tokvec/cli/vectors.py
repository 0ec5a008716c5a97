"""`tokvec analogy` and `tokvec neighbors --vectors`: pretrained word vectors (GloVe, word2vec, fastText)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import CLIError, app, err, out, progress_bar


@app.command()
def analogy(
    a: str = typer.Argument(..., help="e.g. king"),
    b: str = typer.Argument(..., help="e.g. man"),
    c: str = typer.Argument(..., help="e.g. woman"),
    vectors: Path = typer.Option(..., "--vectors", help="A GloVe / word2vec / fastText file."),
    k: int = typer.Option(5, "-k", "--k", help="How many answers."),
) -> None:
    """Words nearest to A - B + C (king man woman -> queen: B is to A as C is to ?)."""
    wv = load_vectors(vectors)
    print_words(f"{a} - {b} + {c} in {vectors} ({b} is to {a} as {c} is to ?):", wv.analogy(a, b, c, k=k))


def load_vectors(path: Path):
    """Read a word-vector file with a progress bar; say what it holds on stderr."""
    from ..tokenizers.word_vectors import read_word_vectors

    if not path.is_file():
        raise CLIError(f"no word-vector file at {path}")
    with progress_bar(path.stat().st_size, "reading vectors") as advance:
        wv = read_word_vectors(path, progress=advance)
    err.print(f"{len(wv):,} words x {wv.dim} dimensions ({wv.format}) from {path}", markup=False, soft_wrap=True)
    return wv


def print_words(title: str, found: list) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col, justify in (("rank", "right"), ("word", "left"), ("cosine", "right")):
        table.add_column(col, justify=justify)
    for rank, (word, cos) in enumerate(found, 1):
        table.add_row(str(rank), word, f"{cos:+.4f}")
    out.print(title, markup=False)
    out.print(table)
