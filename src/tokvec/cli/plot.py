"""`tokvec plot ...`: draw a stage as PNG or SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import DEVICE_HELP, CLIError, _open_run, announce_device, app, check_out, err, out

plot_app = typer.Typer(help="Draw a stage as PNG (or SVG when --out ends in .svg).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


def _save_plot(fig, out_path: Path) -> None:
    from ..viz import save_figure

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
    from ..viz import plot_pe

    check_out(out_path, run=run)
    if run is not None:
        data = _open_run(run, "plot pe")
        fig = plot_pe(
            data.model.embed.positional,
            d_model=data.model.embed.d_model,
            max_len=min(max_len, data.model.config.context_length),
        )
    else:
        fig = plot_pe(positional, d_model=d_model, max_len=max_len)
    _save_plot(fig, out_path)


@plot_app.command("pe-similarity")
def plot_pe_similarity_cmd(
    positional: str = typer.Option("sinusoidal", "--positional", help="Any scheme name (rope, alibi, ...)."),
    n_positions: int = typer.Option(64, "--n-positions", help="Positions compared."),
    d_model: int = typer.Option(64, "--d-model"),
    heads: int = typer.Option(4, "--heads", help="Attention heads (bias schemes differ per head)."),
    method: str = typer.Option(
        "auto", "--method", help="auto (the scheme's own hooks) or attention (measure a real attention layer)."
    ),
    run: Optional[Path] = typer.Option(None, "--run", help="Use this run's scheme and sizes."),
    out_path: Path = typer.Option(Path("pe-similarity.png"), "--out", "-o"),
) -> None:
    """PE(i)·PE(j), or the score a scheme adds to attention, against position and distance."""
    from ..viz import plot_pe_similarity

    check_out(out_path, run=run)
    if run is not None:
        model = _open_run(run, "plot pe-similarity").model
        fig = plot_pe_similarity(
            model.embed.positional,
            n_positions=n_positions,
            d_model=model.config.d_model,
            n_heads=model.config.n_heads,
            method=method,
        )
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
    from ..viz import embedding_table, plot_embeddings, token_strings, top_ids

    check_out(out_path, run=run)
    data = _open_run(run, "plot embeddings")
    fig = plot_embeddings(embedding_table(data.model), token_strings(data.tokenizer), ids=top_ids(data.tokenizer, top))
    _save_plot(fig, out_path)


@plot_app.command("attention")
def plot_attention_cmd(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    text: str = typer.Option(..., "--text", help="Text the model reads."),
    layer: int = typer.Option(0, "--layer", help="Layer to draw (0-based)."),
    out_path: Path = typer.Option(Path("attention.png"), "--out", "-o"),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Attention weights of one layer on a text: heads × (query × key)."""
    from ..viz import plot_attention
    from ..viz.analysis import attention_maps

    check_out(out_path, run=run)
    data = _open_run(run, "plot attention", device)
    weights, pieces = attention_maps(data.model, data.tokenizer, text, layer=layer)
    _save_plot(plot_attention(weights, pieces, layer=layer), out_path)
    announce_device(device, data.model, "plot attention")


@plot_app.command("loss")
def plot_loss_cmd(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory (reads its metrics.jsonl)."),
    metrics: Optional[Path] = typer.Option(None, "--metrics", help="A metrics.jsonl file instead of --run."),
    out_path: Path = typer.Option(Path("loss.png"), "--out", "-o"),
) -> None:
    """Train and validation loss curves from metrics.jsonl."""
    from ..runs.rundir import check_run_dir
    from ..viz import plot_loss

    if metrics is None:
        if run is None:
            raise CLIError("plot loss needs --run DIR or --metrics FILE")
        check_run_dir(run)
        metrics = run / "metrics.jsonl"
    check_out(out_path, [metrics], run=run)
    _save_plot(plot_loss(metrics), out_path)
