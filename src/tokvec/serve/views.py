"""What each panel of the explorer shows, as JSON-ready dicts, computed by the library's own functions.

Every view is a plain function of a tokenizer (and a model) and the typed text, so it is testable and
usable without a web server. The numbers come from the functions the CLI uses: ``tokenizer.tokens``
and ``encode`` (``tokvec tokenize``), :func:`tokvec.viz.trace` (``tokvec trace``),
:func:`tokvec.viz.attention_maps` (``tokvec plot attention``), :func:`tokvec.viz.positional_scores`
(``tokvec plot pe-similarity``), :func:`tokvec.generate.sampling_probs` (what ``tokvec generate``
samples from). Nothing is recomputed here in a second way.

Arrays travel as ``{"shape": [...], "dtype": "float32", "data": base64 of the little-endian bytes}``:
a (256, 384) table is 0.5 MB this way and 1.5 MB as JSON numbers, and it decodes to the exact floats.

Shape legend: s = tokens the model reads, d = d_model, h = heads, V = vocab_size.
"""

from __future__ import annotations

import base64
import math
import warnings
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import TokvecTypeError, TokvecValueError
from ..generate import check_options, encode_prompt, sampling_probs
from ..viz import attention_maps, positional_scores, trace
from ..viz.report import flatten, tokenizer_stats

MAX_SHOWN_TOKENS = 4096  # pieces listed by the tokens view; the count and tokens/char cover all of them
MAX_TOP = 100  # next-token rows a request may ask for
_NOT_SHOWN = ("format", "version", "rng", "files")  # checkpoint bookkeeping, as the report leaves out


# -- values ------------------------------------------------------------------------------------
def encode_array(x: torch.Tensor | np.ndarray) -> dict[str, Any]:
    """An array as ``{"shape", "dtype": "float32", "data": base64 little-endian}`` (NaN stays NaN)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    a = np.ascontiguousarray(x, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "float32", "data": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(obj: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array` (what a client does with the bytes)."""
    return np.frombuffer(base64.b64decode(obj["data"]), dtype="<f4").reshape(obj["shape"])


def check_text(text: Any, *, name: str = "text") -> str:
    """Refuse a text that is not a str or cannot be UTF-8 (a lone surrogate from a broken paste)."""
    if not isinstance(text, str):
        raise TokvecTypeError(f"{name} must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TokvecValueError(
            f"{name} holds a lone surrogate {text[e.start]!r} at character {e.start}, "
            f"which is not a Unicode character; remove it"
        ) from None
    return text


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# -- the context window -------------------------------------------------------------------------
def fit_context(tokenizer, text: str, context_length: int) -> tuple[str, dict | None]:
    """The longest tail of ``text`` (cut at a character) that is at most ``context_length`` tokens.

    The model views read this tail, as ``tokvec generate`` keeps the last ``context_length`` tokens.
    Returns (tail, window): window is None when everything fits, else ``{"start": first character
    kept, "total_tokens": N, "kept_tokens": n, "context_length": C}`` for the page's notice.
    """
    total = len(tokenizer.encode(text))
    if total <= context_length:
        return text, None
    lo, hi = 0, len(text)  # invariant: text[hi:] fits (the empty tail always does)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tokenizer.encode(text[mid:])) <= context_length:
            hi = mid
        else:
            lo = mid + 1
    tail = text[lo:]
    return tail, {
        "start": lo,
        "total_tokens": total,
        "kept_tokens": len(tokenizer.encode(tail)),
        "context_length": context_length,
    }


def _model_text(model, tokenizer, text: str) -> tuple[str, dict | None]:
    text = check_text(text)
    if not text:
        raise TokvecValueError("text is empty: type at least one character")
    return fit_context(tokenizer, text, int(model.config.context_length))


# -- tokens -------------------------------------------------------------------------------------
def rank_basis(tokenizer) -> str:
    """What :func:`frequency_rank` means for this tokenizer."""
    if hasattr(tokenizer, "n_ranks"):
        return "merge rank: byte-level BPE merged lower ranks first, from the most frequent pairs"
    if hasattr(getattr(tokenizer, "vocab", None), "specials"):
        return "frequency rank in the training corpus (1 = most frequent)"
    return "not known for this tokenizer"


def frequency_rank(tokenizer, token_id: int) -> int | None:
    """How common ``token_id`` is, as the tokenizer records it; None for a special token.

    Char and word vocabularies list ordinary tokens by descending corpus frequency after the
    specials (``tokvec.vocab``): rank = id - specials + 1. Byte-level BPE ids are merge ranks (a
    token's id is its rank; the specials come after ``n_ranks``).
    """
    n_ranks = getattr(tokenizer, "n_ranks", None)
    if n_ranks is not None:
        return token_id if token_id < n_ranks else None
    specials = getattr(getattr(tokenizer, "vocab", None), "specials", None)
    if specials is not None:
        return token_id - len(specials) + 1 if token_id >= len(specials) else None
    return None


def _token_bytes(tokenizer, text: str, pieces: list[str]) -> list[bytes]:
    """Each token's bytes: byte-level BPE knows them (a token may cut a character); else the piece's UTF-8."""
    if hasattr(tokenizer, "token_bytes"):
        return tokenizer.token_bytes(text)
    return [p.encode("utf-8") for p in pieces]


def tokens_view(tokenizer, text: str, *, context_length: int | None = None) -> dict[str, Any]:
    """The pieces of ``text`` with their ids, bytes and frequency ranks; count and tokens/char.

    The pieces and ids are ``tokenizer.tokens(text)`` and ``tokenizer.encode(text)``, as ``tokvec
    tokenize`` prints them. At most :data:`MAX_SHOWN_TOKENS` pieces are listed (``shown``).
    With ``context_length`` (a run), ``window`` tells how much of the text the model reads.
    """
    text = check_text(text)
    ids = list(tokenizer.encode(text))
    pieces = list(tokenizer.tokens(text))
    if len(pieces) != len(ids):  # a tokenizer whose pieces are not 1:1 with ids: label by id
        pieces = [tokenizer.decode([i]) for i in ids]
    raw = _token_bytes(tokenizer, text, pieces)
    specials = {getattr(tokenizer, a, None) for a in ("pad_id", "unk_id", "bos_id", "eos_id")} - {None}
    specials |= set(getattr(tokenizer, "special_tokens", {}).values())
    shown = min(len(ids), MAX_SHOWN_TOKENS)
    tokens = [
        {
            "piece": pieces[i],
            "id": ids[i],
            "bytes": raw[i].hex(" "),
            "rank": frequency_rank(tokenizer, ids[i]),
            "special": ids[i] in specials,
        }
        for i in range(shown)
    ]
    window = None
    if context_length is not None and text:
        window = fit_context(tokenizer, text, context_length)[1]
    return {
        "count": len(ids),
        "characters": len(text),
        "tokens_per_char": len(ids) / len(text) if text else None,
        "shown": shown,
        "tokens": tokens,
        "rank_basis": rank_basis(tokenizer),
        "window": window,
        "unk_id": getattr(tokenizer, "unk_id", None),
    }


# -- vectors ------------------------------------------------------------------------------------
def vectors_view(model, tokenizer, text: str) -> dict[str, Any]:
    """The input stage on ``text``: token rows (s, d), the positional contribution, their sum (s, d),
    and every stage's name, shape and note exactly as ``tokvec trace`` prints them.

    positional: additive schemes (``acts_on == "input"``) give ``vectors`` (s, d), the rows added;
    attention-level schemes give ``scores`` (h, s, s) (h = 1 when all heads agree), what the scheme
    alone adds to the attention score of query i and key j (NaN for j > i, never looked at), from
    :func:`tokvec.viz.positional_scores`; ``none`` gives neither.
    """
    text, window = _model_text(model, tokenizer, text)
    t = trace(text, tokenizer, model.embed)
    scheme = model.embed.positional
    positional: dict[str, Any] = {"name": scheme.name, "acts_on": scheme.acts_on}
    if scheme.acts_on == "input":
        positional["vectors"] = encode_array(t.stage("position vectors").value)
        positional["label"] = "position vectors (seq_length, d_model), added to the token vectors"
    elif scheme.acts_on == "attention":
        s = len(t.ids)
        scores = positional_scores(
            scheme, n_positions=max(s, 2), d_model=model.config.d_model, n_heads=model.config.n_heads
        )
        positional["scores"] = encode_array(scores.scores[:, :s, :s])
        positional["label"] = f"what {scheme.name} adds to the attention score of query i, key j: {scores.label}"
    else:
        positional["label"] = f"{scheme.name}: no positional signal; the causal mask alone carries order"
    return {
        "pieces": t.pieces,
        "ids": t.ids,
        "window": window,
        "stages": [{"name": s.name, "shape": list(s.shape), "note": s.note} for s in t.stages],
        "token_vectors": encode_array(t.stage("token vectors").value[0]),
        "positional": positional,
        "input_vectors": encode_array(t.stage("input vectors").value[0]),
    }


# -- attention ----------------------------------------------------------------------------------
def attention_view(model, tokenizer, text: str, *, layer: Any = 0) -> dict[str, Any]:
    """One layer's attention on ``text``: ``weights`` (h, s, s), query × key, rows sum to 1 (from
    :func:`tokvec.viz.attention_maps`, the model's own forward pass)."""
    text, window = _model_text(model, tokenizer, text)
    weights, pieces = attention_maps(model, tokenizer, text, layer=layer)
    return {
        "layer": layer,
        "n_layers": int(model.config.n_layers),
        "n_heads": int(weights.shape[0]),
        "pieces": pieces,
        "weights": encode_array(weights),
        "window": window,
    }


# -- next token ---------------------------------------------------------------------------------
def next_token_view(
    model,
    tokenizer,
    text: str,
    *,
    temperature: Any = 1.0,
    top_k: Any = None,
    top_p: Any = None,
    k: Any = 10,
    token_strings: list[str] | None = None,
) -> dict[str, Any]:
    """The ``k`` most likely next tokens after ``text`` under the sampler's options.

    ``prob`` is :func:`tokvec.generate.sampling_probs` of the last position's logits (temperature,
    then top-k, then top-p: what ``generate`` samples from); ``model_prob`` is the model's own
    softmax (temperature 1, nothing cut). ``rest`` is the probability of every id not listed, so
    the listed ``prob`` plus ``rest`` is 1. ``kept`` counts the ids with probability > 0.
    An empty text starts from ``<bos>`` (as ``tokvec generate`` does).
    """
    text = check_text(text)
    check_options(1, temperature=temperature, top_k=top_k, top_p=top_p)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_TOP:
        raise TokvecValueError(f"k must be an integer in [1, {MAX_TOP}], got {k!r}")
    window = None
    if text:
        text, window = fit_context(tokenizer, text, int(model.config.context_length))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown pieces become <unk>: the tokens view marks them
        ids = encode_prompt(tokenizer, text)
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(torch.tensor([ids], dtype=torch.long, device=device))[0][:, -1].float()  # (1, V)
    probs = sampling_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)[0].cpu()  # (V,)
    model_probs = logits.softmax(dim=-1)[0].cpu()
    top = torch.topk(probs, min(k, probs.shape[0]))
    rows = []
    for p, i in zip(top.values.tolist(), top.indices.tolist()):
        piece = token_strings[i] if token_strings is not None else tokenizer.decode([i])
        rows.append({"id": i, "piece": piece, "prob": p, "model_prob": float(model_probs[i])})
    return {
        "top": rows,
        "rest": max(0.0, 1.0 - float(top.values.double().sum())),
        "kept": int((probs > 0).sum()),
        "vocab_size": int(probs.shape[0]),
        "context_tokens": len(ids),
        "window": window,
        "options": {"temperature": temperature, "top_k": top_k, "top_p": top_p},
    }


# -- model card ---------------------------------------------------------------------------------
def loss_curve(metrics: list[dict] | None) -> list[dict]:
    """``{"step", "split", "loss"}`` of each metrics.jsonl record (a non-finite loss becomes null)."""
    out = []
    for r in metrics or []:
        try:
            out.append({"step": int(r["step"]), "split": str(r["split"]), "loss": _finite(float(r["loss"]))})
        except (KeyError, TypeError, ValueError):
            continue  # a record the report would also skip
    return out


def model_card(
    model,
    tokenizer,
    config: Mapping | None,
    metrics: list[dict] | None,
    *,
    val_text: str | None = None,
    val_note: str = "",
) -> dict[str, Any]:
    """Config (as the report lists it), parameter counts, the loss curve and the tokenizer's stats.

    ``model`` and ``config`` are None for a tokenizer file served on its own.
    """
    card: dict[str, Any] = {"tokenizer": tokenizer_stats(tokenizer, val_text), "val_text_note": val_note}
    card["tokenizer"]["rank_basis"] = rank_basis(tokenizer)
    if config is not None:
        card["config"] = [
            [k, v if isinstance(v, (int, float, str, bool)) or v is None else str(v)]
            for k, v in flatten(config)
            if k.split(".")[0] not in _NOT_SHOWN
        ]
    if model is not None:
        table = model.embed.token.weight
        card.update(
            parameters=model.num_parameters(),
            non_embedding_parameters=model.num_parameters(non_embedding=True),
            embedding_table=list(table.shape),
            model={
                k: getattr(model.config, k)
                for k in ("n_layers", "n_heads", "d_model", "context_length", "positional", "vocab_size")
            },
        )
    card["loss"] = loss_curve(metrics)
    return card
