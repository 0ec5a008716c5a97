"""Plots of every stage: positional encodings, embedding tables, attention, training curves.

Each function returns a ``matplotlib.figure.Figure`` (see :mod:`tokvec.viz.figure` for
``fig.tokvec_info`` and :func:`~tokvec.viz.figure.save_figure`); none of them draws on a screen.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import TokvecValueError
from ..positional import PositionalEncoding
from ..runs.rundir import read_metrics
from .analysis import final_losses, pca_2d, pe_table, positional_scores
from .figure import display_token, new_figure

MAX_TICK_LABELS = 48  # beyond this, token tick labels overlap into a black smear


def plot_pe(
    positional: str | PositionalEncoding = "sinusoidal", *, d_model: int = 128, max_len: int = 200, **options: Any
):
    """Heatmap of the additive position vectors: rows = positions 0..max_len-1, columns = dimensions.

    The image's array is the scheme's (max_len, d_model) table itself.
    """
    table, scheme = pe_table(positional, d_model=d_model, max_len=max_len, **options)
    limit = float(np.abs(table).max()) or 1.0
    with new_figure("pe", figsize=(8, 5), scheme=scheme.name, shape=table.shape) as fig:
        ax = fig.add_subplot()
        image = ax.imshow(table, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_xlabel("dimension i of d_model")
        ax.set_ylabel("position")
        ax.set_title(f"{scheme.name} positional encoding: (max_len, d_model) = {table.shape}")
        fig.colorbar(image, ax=ax, label="PE[position, i]")
    return fig


def plot_pe_similarity(
    positional: str | PositionalEncoding = "sinusoidal",
    *,
    n_positions: int = 64,
    d_model: int = 64,
    n_heads: int = 4,
    method: str = "auto",
    **options: Any,
):
    """How a scheme alone relates positions: the (query i × key j) score matrix and score vs distance.

    See :func:`~tokvec.viz.analysis.positional_scores` for what "score" means for each kind of scheme.
    """
    result = positional_scores(
        positional, n_positions=n_positions, d_model=d_model, n_heads=n_heads, method=method, **options
    )
    distances, profile = result.by_distance()
    with new_figure(
        "pe-similarity", figsize=(11, 4.5), scheme=result.name, method=result.method, scores=result.scores
    ) as fig:
        left, right = fig.subplots(1, 2)
        image = left.imshow(result.scores[0], cmap="viridis", interpolation="nearest")
        left.set_xlabel("key position j")
        left.set_ylabel("query position i")
        heads = result.scores.shape[0]
        left.set_title(f"{result.name}: {result.label}" + (" (head 0)" if heads > 1 else ""))
        fig.colorbar(image, ax=left)
        for h in range(heads):
            right.plot(distances, profile[h], label=f"head {h}" if heads > 1 else None, lw=1.2)
        right.set_xlabel("distance i − j (query at the last position)")
        right.set_ylabel(result.label)
        right.set_title(f"{result.name}: score vs distance")
        right.grid(alpha=0.3)
        if 1 < heads <= 12:
            right.legend(fontsize=7, ncols=2)
    return fig


def plot_embeddings(
    table: torch.Tensor | np.ndarray,
    tokens: Sequence[str],
    *,
    ids: Sequence[int] | None = None,
    top: int = 500,
    title: str | None = None,
):
    """2-D PCA of rows of a (V, d) table, each point labelled with its token.

    ids: the rows to show (default: the first ``top`` ids; in a frequency-ordered vocabulary, the most
    frequent tokens). PCA is fitted on the rows shown.
    """
    table = table.detach().cpu().numpy() if isinstance(table, torch.Tensor) else np.asarray(table)
    if table.ndim != 2 or table.shape[0] != len(tokens):
        raise TokvecValueError(
            f"table must be (V, d) with one row per token; got {table.shape} for {len(tokens)} tokens"
        )
    if ids is None:
        if not isinstance(top, int) or top < 2:
            raise TokvecValueError(f"top must be an integer >= 2, got {top!r}")
        ids = list(range(min(top, table.shape[0])))
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < table.shape[0]]
    if bad:
        raise TokvecValueError(f"token id {bad[0]} is out of range for vocab_size {table.shape[0]}")
    coords, explained = pca_2d(table[ids])
    labels = [display_token(tokens[i]) for i in ids]
    with new_figure("embeddings", figsize=(10, 8), texts=labels, ids=ids, coords=coords, explained=explained) as fig:
        ax = fig.add_subplot()
        ax.scatter(coords[:, 0], coords[:, 1], s=6, alpha=0.5, color="#4062bb")
        size = 9 if len(ids) <= 100 else 7 if len(ids) <= 300 else 6
        for (x, y), label in zip(coords, labels):
            ax.annotate(label, (x, y), fontsize=size, alpha=0.85, xytext=(2, 2), textcoords="offset points")
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of variance)")
        ax.set_title(title or f"token embeddings: {len(ids)} of {table.shape[0]} rows, d_model = {table.shape[1]}, PCA")
        ax.grid(alpha=0.2)
    return fig


def plot_attention(
    weights: torch.Tensor | np.ndarray, pieces: Sequence[str], *, layer: int | None = None, title: str | None = None
):
    """One heatmap per head of attention weights. weights: (h, s, s) query × key, rows summing to 1."""
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
    if w.ndim != 3 or w.shape[1] != w.shape[2] or w.shape[1] != len(pieces):
        raise TokvecValueError(f"weights must be (heads, seq, seq) with seq = {len(pieces)} tokens, got {w.shape}")
    heads, s = w.shape[0], w.shape[1]
    labels = [display_token(p, 6) for p in pieces]
    cols = min(heads, 4)
    rows = -(-heads // cols)
    side = 2.2 + 0.12 * min(s, MAX_TICK_LABELS)
    with new_figure(
        "attention", figsize=(side * cols + 1, side * rows + 0.6), texts=labels, layer=layer, weights=w
    ) as fig:
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        image = None
        for h, ax in enumerate(axes):
            if h >= heads:
                ax.set_visible(False)
                continue
            image = ax.imshow(w[h], cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"head {h}", fontsize=9)
            if s <= MAX_TICK_LABELS:
                ticks = np.arange(s)
                ax.set_xticks(ticks, labels, fontsize=7, rotation=90)
                ax.set_yticks(ticks, labels, fontsize=7)
            ax.set_xlabel("key", fontsize=8)
            ax.set_ylabel("query", fontsize=8)
        fig.colorbar(image, ax=list(axes[:heads]), shrink=0.8, label="attention weight")
        where = f"layer {layer}: " if layer is not None else ""
        fig.suptitle(title or f"{where}{heads} heads × (query × key), {s} tokens")
    return fig


def plot_loss(metrics: str | os.PathLike | Sequence[dict], *, title: str | None = None):
    """Train and validation loss against step, from a ``metrics.jsonl`` (or its run dir) or records."""
    records = read_metrics(metrics) if isinstance(metrics, (str, os.PathLike)) else list(metrics)
    if not records:
        raise TokvecValueError("no loss records to plot")
    last = final_losses(records)
    with new_figure("loss", figsize=(8, 4.5), final=last) as fig:
        ax = fig.add_subplot()
        style = {
            "train": dict(lw=1.0, alpha=0.8, color="#4062bb"),
            "val": dict(lw=1.6, marker="o", ms=3, color="#d1495b"),
        }
        for split in sorted({r["split"] for r in records}, key=lambda x: (x != "train", x)):
            points = sorted((r["step"], r["loss"]) for r in records if r["split"] == split)
            steps, losses = zip(*points)
            ax.plot(steps, losses, label=f"{split} (last {losses[-1]:.3f} at step {steps[-1]})", **style.get(split, {}))
        ax.set_xlabel("step")
        ax.set_ylabel("loss (cross-entropy, nats/token)")
        ax.set_title(title or "training curves")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig
