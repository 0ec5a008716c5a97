"""One self-contained HTML page about a training run: config, size, tokenizer, losses, a sample, plots.

Images are inlined as base64 PNG and the CSS sits in the page, so ``report.html`` opens from disk,
mailed or archived, with no server and no other file. A section whose data is missing (no metrics
yet, no validation text) says so instead of failing the whole report.

Run directory contract (written by ``tokvec train``): ``config.json`` ``{"format": "tokvec.run",
"version": 1, "model": {...}, "train": {...}, "tokenizer": {...}, "step": N}``, ``model.safetensors``,
``tokenizer.json``, ``metrics.jsonl``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .._io import atomic_open
from .._version import version
from ..errors import FormatError, TokvecError
from ..generate import stream
from ..runs.rundir import RunData, open_run
from .analysis import attention_maps, embedding_table, final_losses, token_strings, top_ids
from .figure import figure_png
from .plots import plot_attention, plot_embeddings, plot_loss, plot_pe, plot_pe_similarity

_NOT_SHOWN = ("format", "version", "rng", "files")  # bookkeeping of the checkpoint, not settings


def run_val_text(config: Mapping, tokenizer, run_dir: str | os.PathLike) -> str:
    """The text of a run's validation split: the ids training read (``run_dir/tokens.bin``) at the
    split config.json records (``data.val_start``, ``data.val_tokens``), decoded.

    Only files inside the run directory are read: the corpus path in config.json is never opened
    (the corpus may have moved or changed since, and a crafted config must not make a report embed
    an arbitrary file). Raises FormatError when the split or the token file is missing or damaged.
    """
    from ..data.tokenfile import load_token_file
    from ..runs.train import TOKENS_FILE

    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    start, length = data.get("val_start"), data.get("val_tokens")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (start, length)):
        raise FormatError(
            "the run's config.json records no validation split (data.val_start, data.val_tokens); "
            "pass the validation text yourself (--val-text)"
        )
    path = Path(run_dir) / TOKENS_FILE
    try:
        ids = load_token_file(path, tokenizer=tokenizer)
    except FileNotFoundError:
        raise FormatError(
            f"the run has no {TOKENS_FILE} (the ids it trained on); pass the validation text yourself (--val-text)"
        ) from None
    if start + length > len(ids) or data.get("tokens") not in (None, len(ids)):
        raise FormatError(
            f"{path} holds {len(ids)} ids but config.json records {data.get('tokens')} with a "
            f"validation split at {start}..{start + length}; pass the validation text yourself "
            f"(--val-text)"
        )
    return tokenizer.decode([int(i) for i in ids[start : start + length]])


# -- numbers ------------------------------------------------------------------------------------
def tokenizer_stats(tokenizer, text: str | None) -> dict[str, Any]:
    """vocab_size and, on ``text``, tokens, characters and tokens per character."""
    stats: dict[str, Any] = {
        "kind": getattr(tokenizer, "kind", type(tokenizer).__name__),
        "vocab_size": tokenizer.vocab_size,
    }
    if text:
        n_tokens = len(tokenizer.encode(text))
        stats.update(characters=len(text), tokens=n_tokens, tokens_per_char=n_tokens / len(text))
    return stats


def flatten(config: Mapping, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"model": {"d_model": 64}}`` -> ``[("model.d_model", 64)]``, in the config's own order."""
    rows: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += flatten(value, name + ".")
        else:
            rows.append((name, value))
    return rows


# -- the page -----------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,"Noto Sans CJK SC","Noto Sans",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d1d1f;background:#fff}h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.8em}table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top;overflow-wrap:anywhere}th{background:#f4f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f9;border:1px solid #e3e3e8;padding:.8em;white-space:pre-wrap;font-size:.95em}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}.note{color:#8a5a00}.grid{display:flex;flex-wrap:wrap;gap:2em}
figure{margin:0}figcaption{font-size:.85em;color:#555}
"""


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    def cell(v: Any, tag: str = "td") -> str:
        num = isinstance(v, (int, float)) and not isinstance(v, bool)
        text = (
            f"{v:,}"
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000
            else f"{v:.4g}"
            if isinstance(v, float)
            else str(v)
        )
        return f"<{tag}{' class=num' if num and tag == 'td' else ''}>{html.escape(text)}</{tag}>"

    head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _figure(fig, caption: str) -> str:
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    font = fig.tokvec_info.get("font_note", "")
    note = f" <span class=note>{html.escape(font)}</span>" if fig.tokvec_info.get("needs_cjk") else ""
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}{note}</figcaption></figure>"
    )


def _section(parts: list[str], title: str, build: Callable[[], str]) -> None:
    """Append a section; when its data is missing or bad, a one-line note takes its place."""
    try:
        body = build()
    except (TokvecError, OSError) as e:
        body = f"<p class=note>not available: {html.escape(str(e))}</p>"
    parts.append(f"<h2>{html.escape(title)}</h2>\n{body}")


def build_report(
    run: RunData | str | os.PathLike,
    *,
    val_text: str | None = None,
    sample: str | None = None,
    prompt: str | None = None,
    max_new_tokens: int = 200,
    attention_text: str | None = None,
    top: int = 300,
    seed: int = 0,
    title: str | None = None,
) -> str:
    """The report page as one HTML string (write it with :func:`write_report`).

    val_text: text to measure the tokenizer on (tokens per character); default: the run's validation
    split (:func:`run_val_text`), or ``run.extra["val_text"]``. sample: text to show as the generated
    sample; default: ``generate`` ``max_new_tokens`` tokens from ``prompt`` with ``seed``.
    attention_text: what the attention plot reads (default: the prompt, else the start of val_text).
    """
    data = open_run(run) if not isinstance(run, RunData) else run
    val_source = "given"
    if val_text is None and data.extra.get("val_text") is not None:
        val_text = data.extra["val_text"]
    elif val_text is None and data.path is not None:
        try:
            val_text, val_source = run_val_text(data.config, data.tokenizer, data.path), "the run's validation split"
        except (TokvecError, OSError) as e:
            val_source = f"not available: {e}"
    model, tok, config = data.model, data.tokenizer, data.config
    name = title or (f"tokvec run {data.path}" if data.path else "tokvec run")
    parts = [
        f"<h1>{html.escape(name)}</h1>",
        f"<p>generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC} by tokvec "
        f"{html.escape(_version())}; step {html.escape(str(config.get('step', '?')))}</p>",
    ]

    _section(
        parts,
        "Configuration",
        lambda: _table(
            [(k, _short(v)) for k, v in flatten(config) if k.split(".")[0] not in _NOT_SHOWN], ["setting", "value"]
        ),
    )
    _section(parts, "Model", lambda: _table(_model_rows(model)))
    _section(parts, "Tokenizer", lambda: _tokenizer_section(tok, val_text, val_source))
    _section(parts, "Final losses", lambda: _loss_section(data.metrics))
    _section(parts, "Generated sample", lambda: _sample_section(model, tok, sample, prompt, max_new_tokens, seed))

    figures: list[str] = []
    _section(
        figures,
        "Training curves",
        lambda: _figure(plot_loss(_need(data.metrics, "metrics.jsonl")), "train and validation loss by step"),
    )
    table = embedding_table(model)
    _section(
        figures,
        "Token embeddings",
        lambda: _figure(
            plot_embeddings(table, token_strings(tok), ids=top_ids(tok, top)),
            f"2-D PCA of the first {top} non-special rows of the ({table.shape[0]}, {table.shape[1]}) table",
        ),
    )
    _section(figures, "Positional encoding", lambda: _positional_section(model))
    text = attention_text or prompt or val_text or None
    _section(figures, "Attention", lambda: _attention_section(model, tok, text))
    parts += figures
    body = "\n".join(parts)
    return (
        f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(name)}</title>"
        f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def write_report(page: str, path: str | os.PathLike) -> Path:
    """Write the page atomically as UTF-8; returns the path."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def _short(value: Any, limit: int = 80) -> Any:
    text = value if isinstance(value, (int, float)) else str(value)
    return text if not isinstance(text, str) or len(text) <= limit else text[: limit - 1] + "…"


def _version() -> str:
    return version()


def _need(value, what: str):
    if not value:
        raise FormatError(f"the run has no {what} yet")
    return value


def _model_rows(model) -> list[tuple[str, Any]]:
    table = embedding_table(model)
    n = model.num_parameters()  # a tied table counted once
    rows = [
        ("parameters", n),
        ("embedding table (vocab_size, d_model)", str(tuple(table.shape))),
        ("embedding table share of parameters", f"{100 * table.numel() / n:.1f}%"),
    ]
    cfg = getattr(model, "config", None)
    for key in ("n_layers", "n_heads", "d_model", "context_length", "positional"):
        if cfg is not None and hasattr(cfg, key):
            rows.append((key, getattr(cfg, key)))
    return rows


def _tokenizer_section(tok, val_text: str | None, source: str) -> str:
    stats = tokenizer_stats(tok, val_text)
    rows = [("kind", stats["kind"]), ("vocab_size", stats["vocab_size"])]
    if "tokens" in stats:
        rows += [
            ("validation text", source),
            ("validation text: characters", stats["characters"]),
            ("validation text: tokens", stats["tokens"]),
            ("tokens per character", round(stats["tokens_per_char"], 4)),
        ]
        note = ""
    else:
        why = source if source.startswith("not available") else "no validation text given"
        note = f"<p class=note>tokens per character not measured: {html.escape(why)}</p>"
    return _table(rows) + note


def _loss_section(metrics) -> str:
    last = final_losses(_need(metrics, "metrics.jsonl"))
    rows = [
        (split, r["step"], float(r["loss"]), float(math.exp(min(r["loss"], 50))))
        for split, r in sorted(last.items(), key=lambda kv: kv[0] != "train")
    ]
    return _table(rows, ["split", "step", "loss", "perplexity"])


def _sample_section(model, tok, sample, prompt, max_new_tokens, seed) -> str:
    if sample is None:
        sample = generate_sample(model, tok, prompt or "", max_new_tokens=max_new_tokens, seed=seed)
    shown = f"<p>prompt: <code>{html.escape(prompt)}</code></p>" if prompt else ""
    return f"{shown}<pre>{html.escape(sample)}</pre>"


def generate_sample(model, tok, prompt: str, *, max_new_tokens: int = 200, seed: int = 0) -> str:
    """``prompt`` plus text sampled from the model (seeded: the report is stable), as ``tokvec generate``
    gives it: :func:`tokvec.generate.stream`. Without a prompt, generation starts from ``<bos>`` (a
    tokenizer without one: an error naming the fix); the text stops at ``<eos>``.
    """
    return prompt + "".join(stream(model, tok, prompt, max_new_tokens, seed=seed))


def _positional_section(model) -> str:
    cfg = model.config
    scheme = model.embed.positional  # the model's one positional module (shared with its attention layers)
    n = min(int(cfg.context_length), 128)
    similarity = plot_pe_similarity(scheme, n_positions=max(n, 2), d_model=cfg.d_model, n_heads=cfg.n_heads)
    if scheme.acts_on == "input":
        return _figure(
            plot_pe(scheme, d_model=cfg.d_model, max_len=min(int(cfg.context_length), 512)),
            "position vectors added to the input",
        ) + _figure(similarity, "PE(i)·PE(j): how alike the position vectors of two positions are")
    return _figure(similarity, f"what {scheme.name} alone adds to the attention score, by query/key position")


def _fit(tok, text: str, limit: int) -> str:
    """The longest prefix of ``text`` (cut at characters) that is at most ``limit`` tokens."""
    while len(text) > 1 and len(tok.encode(text)) > limit:
        n = len(tok.encode(text))
        text = text[: max(1, min(len(text) - 1, len(text) * limit // n))]
    return text


def _attention_section(model, tok, text: str | None) -> str:
    if not text:
        raise FormatError("no text to read: pass attention_text, a prompt or a validation text")
    text = _fit(tok, text.strip() or text, min(int(getattr(model.config, "context_length", 32)), 32))
    n = n_layers = len(model.blocks)
    out = []
    for layer in sorted({0, n_layers - 1}):
        weights, pieces = attention_maps(model, tok, text, layer=layer)
        out.append(_figure(plot_attention(weights, pieces, layer=layer), f"layer {layer} of {n}"))
    return "".join(out)
