"""See every stage: plots of positional encodings, embedding tables, attention and training, and an
HTML report of a run. Figures are plain matplotlib Figures drawn by Agg (no display needed).

    >>> from tokvec import viz
    >>> fig = viz.plot_pe(d_model=128, max_len=200)      # heatmap position x dimension
    >>> viz.save_figure(fig, "pe.png")                   # .svg for SVG
    >>> fig.tokvec_info["font_note"]                     # which CJK font labels use, or that none was found
    >>> run = viz.open_run("runs/x")                       # model, tokenizer, config, metrics
    >>> viz.write_report(viz.build_report(run), "report.html")
"""

from ..runs.rundir import RunData, open_run, read_metrics
from .analysis import (
    Neighbor,
    PositionalScores,
    attention_maps,
    embedding_table,
    final_losses,
    neighbors,
    pca_2d,
    pe_table,
    positional_scores,
    token_strings,
    top_ids,
)
from .figure import display_token, figure_png, save_figure
from .fonts import FontInfo, find_cjk_font, has_cjk
from .plots import plot_attention, plot_embeddings, plot_loss, plot_pe, plot_pe_similarity
from .report import build_report, write_report
from .trace import Stage, Trace, trace

__all__ = [
    "plot_pe",
    "plot_pe_similarity",
    "plot_embeddings",
    "plot_attention",
    "plot_loss",
    "save_figure",
    "figure_png",
    "display_token",
    "positional_scores",
    "PositionalScores",
    "pe_table",
    "pca_2d",
    "neighbors",
    "Neighbor",
    "token_strings",
    "read_metrics",
    "final_losses",
    "attention_maps",
    "embedding_table",
    "top_ids",
    "open_run",
    "RunData",
    "build_report",
    "write_report",
    "trace",
    "Trace",
    "Stage",
    "find_cjk_font",
    "FontInfo",
    "has_cjk",
]
