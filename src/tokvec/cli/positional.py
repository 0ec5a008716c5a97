"""`tokvec positional compare`: length extrapolation of the positional schemes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import CLIError, app, err, out, progress_bar

positional_app = typer.Typer(help="Positional encodings: compare schemes.", no_args_is_help=True)
app.add_typer(positional_app, name="positional")


@positional_app.command("compare")
def positional_compare(
    corpus: Optional[Path] = typer.Option(
        None, "--corpus", help="Text file or directory (default: the Python standard library's source)."
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --corpus (e.g. gb18030)."),
    train_len: int = typer.Option(128, "--train-len", help="Context length every model trains at."),
    eval_lens: str = typer.Option("128,256,512,1024", "--eval-lens", help="Lengths to score, comma separated."),
    schemes: str = typer.Option("all", "--schemes", help="all, or a comma list such as rope,alibi,t5."),
    max_steps: int = typer.Option(300, "--max-steps", help="Training steps per scheme."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (torch's default)."),
    out_dir: Path = typer.Option(Path("runs/positional-compare"), "--out", help="Where the CSV and plot go."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier comparison in --out."),
) -> None:
    """Train the same small model once per positional scheme; show perplexity at longer lengths."""
    from ..runs.experiments import CompareConfig, compare, format_table, parse_lengths, parse_schemes, plot, write_csv

    if corpus is not None and not corpus.exists():
        raise CLIError(f"no such file or directory: {corpus}")
    config = CompareConfig(
        corpus=None if corpus is None else str(corpus),
        encoding=encoding,
        train_len=train_len,
        eval_lens=parse_lengths(eval_lens),
        schemes=parse_schemes(schemes),
        max_steps=max_steps,
        threads=threads,
    ).validate()
    from ..corpus import corpus_files
    from ..runs.lock import RunClaim

    # claimed (checked, locked, proven writable) before a minute of training per scheme
    with RunClaim(out_dir, "positional-compare", force=force, inputs=corpus_files(config.corpus)):
        err.print(
            f"tokvec positional compare: {len(config.schemes)} schemes, d_model {config.d_model}, "
            f"{config.n_layers} layers, {config.max_steps} steps each, trained at {config.train_len}",
            markup=False,
        )
        with progress_bar(len(config.schemes) * (1 + len(config.eval_lens)), "comparing") as advance:
            rows = compare(config, progress=lambda message: advance(1, description=message))
        png_path = plot(rows, out_dir / "compare.png", train_len=config.train_len)
        csv_path = write_csv(rows, out_dir / "compare.csv")  # last: the CSV commits the comparison
    out.print(format_table(rows), markup=False)
    out.print(f"wrote {csv_path} and {png_path}", markup=False)
