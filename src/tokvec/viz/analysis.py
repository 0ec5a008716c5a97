"""The numbers behind the plots, computable (and testable) without drawing anything.

Shape legend: V = vocab_size, d = d_model, n = positions, h = heads, hd = head_dim, s = seq.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import TokenIdError, TokvecValueError, UnknownTokenError
from ..positional import PositionalEncoding, build
from ..positional.base import head_dim_for

METHODS = ("auto", "attention")
_KINDS = {"q_i·k_j/√hd": "rotary", "bias(i,j)": "bias", "term(q_i,k_j)": "term"}


# -- positional encodings ---------------------------------------------------------------------
def build_scheme(
    positional: str | PositionalEncoding, *, d_model: int, n_heads: int, max_len: int, **options: Any
) -> PositionalEncoding:
    """A scheme by name (or as given) with the model-wide context every scheme may need."""
    if isinstance(positional, PositionalEncoding):
        return positional
    return build(
        positional,
        d_model=d_model,
        n_heads=n_heads,
        head_dim=head_dim_for(d_model, n_heads),
        max_len=max_len,
        **options,
    )


MAX_PLOT_POSITIONS = 8192  # rows a figure can show; (h, n, n) scores grow with the square


def pe_table(
    positional: str | PositionalEncoding = "sinusoidal", *, d_model: int = 128, max_len: int = 200, **options: Any
) -> tuple[np.ndarray, PositionalEncoding]:
    """The additive position vectors of positions 0..max_len-1: (max_len, d_model), and the scheme."""
    from .._checks import check_int_arg

    check_int_arg("max_len", max_len, lo=1, hi=1 << 20, fix="a plot shows a few thousand positions; e.g. 200")
    scheme = build_scheme(positional, d_model=d_model, n_heads=1, max_len=max_len, **options)
    if scheme.acts_on != "input":
        raise TokvecValueError(
            f"positional scheme {scheme.name!r} acts on {scheme.acts_on!r}: it adds no vectors to the input, so "
            f"there is no table to draw; plot its effect on attention scores with plot_pe_similarity "
            f"(tokvec plot pe-similarity --positional {scheme.name})"
        )
    with torch.no_grad():
        return scheme.table(max_len).detach().float().cpu().numpy(), scheme


@dataclass
class PositionalScores:
    """How much a scheme alone makes position i attend to position j.

    scores: (h, n, n) — ``scores[head, i, j]`` for query position i, key position j (h = 1 when all
    heads share it). For attention-level schemes j > i is NaN (a causal model never looks there).
    method: ``"dot"`` PE(i)·PE(j) (additive schemes); for attention-level schemes the parts present,
    joined by "+": ``"rotary"`` rotated q·k/√hd of one fixed vector, ``"bias"`` the score bias,
    ``"term"`` the q/k-dependent score term (Shaw, Transformer-XL); ``"attention"`` log attention
    weight relative to the diagonal from a real attention layer on constant input; ``"none"`` zero.
    """

    name: str
    method: str
    scores: np.ndarray
    label: str

    def by_distance(self) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the last query against every key, by distance i - j: (n,) distances, (h, n) scores."""
        n = self.scores.shape[-1]
        return np.arange(n), self.scores[:, n - 1, ::-1]


def positional_scores(
    positional: str | PositionalEncoding = "sinusoidal",
    *,
    n_positions: int = 64,
    d_model: int = 64,
    n_heads: int = 4,
    method: str = "auto",
    vector: torch.Tensor | None = None,
    **options: Any,
) -> PositionalScores:
    """Score of query position i against key position j that comes from the positional scheme alone.

    Additive schemes: PE(i)·PE(j) (n, n). Attention-level schemes, through the interface the attention
    layer itself calls: ``rotate`` applied to a fixed vector (``vector``: (hd,), default all ones, as
    in the RoFormer decay plot) gives q_i·k_j/√hd; ``score_bias(n, n)`` (h, n, n) and
    ``score_term(q, k)`` of that same vector are added. A scheme that acts in attention through none
    of these hooks (or ``method="attention"``) is measured on a real
    :class:`~tokvec.model.attention.CausalSelfAttention` fed constant input: log w_ij - log w_ii.
    """
    if method not in METHODS:
        raise TokvecValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    from .._checks import check_int_arg, check_memory

    check_int_arg(
        "n_positions",
        n_positions,
        lo=2,
        hi=MAX_PLOT_POSITIONS,
        fix="a plot shows a few thousand positions at most; e.g. 256",
    )
    heads = n_heads if isinstance(n_heads, int) and not isinstance(n_heads, bool) and n_heads > 0 else 1
    # (h, n, n) float64 scores plus as many intermediates (causal mask, bias, term, attention weights)
    check_memory(
        f"scores of {n_positions} x {n_positions} positions for {heads} head(s)",
        6 * 8 * heads * n_positions**2,
        fix="use fewer positions (--n-positions) or heads",
    )
    scheme = build_scheme(positional, d_model=d_model, n_heads=n_heads, max_len=n_positions, **options)
    if method == "attention" and scheme.acts_on != "attention":
        raise TokvecValueError(
            f"method 'attention' measures schemes that act inside attention; {scheme.name!r} "
            f"acts on {scheme.acts_on!r}: use method 'auto'"
        )
    n = n_positions
    causal = np.tril(np.ones((n, n), dtype=bool))
    device = _device_of(scheme)  # a run's scheme may live on a GPU: compute there, return NumPy
    with torch.no_grad():
        if scheme.acts_on == "input":
            table = scheme.table(n).detach().double().cpu()
            scores = (table @ table.T).unsqueeze(0).numpy()
            return PositionalScores(scheme.name, "dot", scores, "PE(i)·PE(j)")
        if scheme.acts_on == "none":
            return PositionalScores(
                scheme.name, "none", np.where(causal, 0.0, np.nan)[None], "no positional signal (NoPE)"
            )
        heads = getattr(scheme, "n_heads", None) or n_heads
        head_dim = getattr(scheme, "head_dim", None) or d_model // n_heads

        def from_attention():  # the attention weights themselves, measured through a real forward
            return _masked(
                scheme.name,
                "attention",
                _attention_scores(scheme, n, d_model, n_heads).numpy(),
                "log w(i,j) - log w(i,i)",
                causal,
            )

        if method == "attention":
            return from_attention()
        v = (
            torch.ones(head_dim, device=device)
            if vector is None
            else torch.as_tensor(vector, dtype=torch.float32, device=device)
        )
        if v.shape != (head_dim,):
            raise TokvecValueError(f"vector must have shape ({head_dim},) = (head_dim,), got {tuple(v.shape)}")
        x = v.expand(1, heads, n, head_dim).contiguous()  # (b=1, h, n, hd): the same content everywhere
        q, k = scheme.rotate(x.clone(), x.clone(), torch.arange(n, device=device)) if scheme.rotates else (x, x)
        scores, parts = torch.zeros(heads, n, n, dtype=torch.float64, device=device), []
        if scheme.rotates:
            scores = scores + (q[0] @ k[0].transpose(-2, -1)).double() / math.sqrt(head_dim)
            parts.append("q_i·k_j/√hd")
        bias = scheme.score_bias(n, n, 0)  # (h, n, n) or None
        if bias is not None:
            scores = scores + bias.detach().double()
            parts.append("bias(i,j)")
        term = scheme.score_term(q, k, 0)  # (1, h, n, n) or None: Shaw, Transformer-XL
        if term is not None:
            scores = scores + term[0].detach().double()
            parts.append("term(q_i,k_j)")
        if not parts:  # acts in attention through none of the hooks measured here
            return from_attention()
        kind = "+".join(_KINDS[p] for p in parts)
        scores, label = scores.cpu().numpy(), " + ".join(parts)
        return _masked(scheme.name, kind, scores, label, causal)


def _masked(name: str, kind: str, scores: np.ndarray, label: str, causal: np.ndarray) -> PositionalScores:
    if np.allclose(scores, scores[:1]):
        scores = scores[:1]  # every head the same: keep one
    return PositionalScores(name, kind, np.where(causal, scores, np.nan), label)


def _attention_scores(scheme: PositionalEncoding, n: int, d_model: int, n_heads: int) -> torch.Tensor:
    """log w(i, j) - log w(i, i) from the model's own attention layer, with q = k = v = x = ones:
    content is the same everywhere, so what varies is position alone. -> (h, n, n)."""
    from ..model.attention import CausalSelfAttention

    with torch.device(_device_of(scheme)), torch.no_grad():  # built beside the scheme (a run's may be on a GPU)
        attn = CausalSelfAttention(d_model, n_heads, positional=scheme, bias=False).eval()
        attn.qkv.weight.copy_(torch.cat([torch.eye(d_model)] * 3))
        _, weights = attn(torch.ones(1, n, d_model), need_weights=True)  # (1, h, n, n)
    logw = weights[0].double().log()
    return (logw - torch.diagonal(logw, dim1=-2, dim2=-1).unsqueeze(-1)).cpu()


def _device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer; the CPU for a module that holds none."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


# -- embedding tables -------------------------------------------------------------------------
def pca_2d(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their first two principal components. x: (n, d) -> (n, 2), explained (2,).

    Signs follow a fixed rule (each component's largest-magnitude loading is positive) so the same
    table always gives the same picture.
    """
    x = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise TokvecValueError(f"PCA needs a (n, d) table with n >= 2 rows and d >= 2 columns, got {x.shape}")
    centered = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(2), np.abs(vt).argmax(axis=1)])
    vt = vt * signs[:, None]
    total = float((s**2).sum())
    explained = (s[:2] ** 2) / total if total > 0 else np.zeros(2)
    return centered @ vt.T, explained


def token_strings(tokenizer) -> list[str]:
    """The string of every id 0..V-1 (bytes that are not whole UTF-8 characters shown as \\xNN); ``""``
    for an id that is no token (a BPE vocabulary imported with gaps in its ids, e.g. a HF model's
    unused ids: its embedding table still has their rows)."""
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is not None and hasattr(vocab, "lookup_tokens"):
        return vocab.lookup_tokens(range(tokenizer.vocab_size))
    if hasattr(tokenizer, "decode_bytes"):
        return [_token_string(tokenizer, i) for i in range(tokenizer.vocab_size)]
    return [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]


def _token_string(tokenizer, i: int) -> str:
    try:
        return tokenizer.decode_bytes([i]).decode("utf-8", errors="backslashreplace")
    except TokenIdError:  # an unassigned id between assigned ones
        return ""


def embedding_table(model) -> torch.Tensor:
    """A model's token embedding table (V, d), detached: ``model.embed.token.weight``."""
    return model.embed.token.weight.detach().cpu()


def top_ids(tokenizer, top: int) -> list[int]:
    """The first ``top`` ids that are not special tokens (pad, unk, bos, eos): in a frequency-ordered
    vocabulary, the most frequent tokens."""
    from .._checks import check_int_arg

    check_int_arg("top", top, lo=1, hi=1 << 20, fix="a plot labels a few hundred points at most; e.g. 500")
    specials = {getattr(tokenizer, a, None) for a in ("pad_id", "unk_id", "bos_id", "eos_id")}
    return [i for i in range(min(tokenizer.vocab_size, top + len(specials))) if i not in specials][:top]


@dataclass(frozen=True)
class Neighbor:
    token: str
    id: int
    similarity: float


def neighbors(
    table: torch.Tensor | np.ndarray, tokens: Sequence[str], query: str | int, *, k: int = 10
) -> list[Neighbor]:
    """The ``k`` tokens whose rows have the highest cosine similarity to ``query``'s row (itself excluded).

    table: (V, d); tokens: the V token strings (``token_strings(tokenizer)``); query: a token or an id.
    A query that is not a token raises UnknownTokenError with the closest spellings in the vocabulary.
    """
    table = torch.as_tensor(np.asarray(table) if not isinstance(table, torch.Tensor) else table).detach().double()
    if table.dim() != 2 or table.shape[0] != len(tokens):
        raise TokvecValueError(
            f"table must be (V, d) with one row per token; got {tuple(table.shape)} for {len(tokens)} tokens"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise TokvecValueError(f"k must be a positive integer, got {k!r}")
    index = _find_token(tokens, query)
    unit = torch.nn.functional.normalize(table, dim=1)
    sims = unit @ unit[index]
    sims[index] = -math.inf
    top = torch.topk(sims, min(k, len(tokens) - 1))
    return [Neighbor(tokens[i], int(i), float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]


def _find_token(tokens: Sequence[str], query: str | int) -> int:
    if isinstance(query, int) and not isinstance(query, bool):
        if not 0 <= query < len(tokens):
            raise TokvecValueError(
                f"token id {query} is out of range for vocab_size {len(tokens)}; use an id in [0, {len(tokens) - 1}]"
            )
        return query
    try:
        return list(tokens).index(query)
    except ValueError:
        pass
    close = difflib.get_close_matches(query, [t for t in tokens if t], n=5, cutoff=0.5)
    hint = f"close ones: {', '.join(map(repr, close))}" if close else "no close spelling in the vocabulary"
    parts = [c for c in query if c in tokens] if len(query) > 1 else []
    if len(query) > 1 and len(parts) == len(query):
        hint += f"; it is {len(query)} tokens here ({', '.join(map(repr, parts))}): ask for one of them"
    raise UnknownTokenError(f"token {query!r} is not in the vocabulary ({len(tokens)} tokens); {hint}")


# -- training metrics -------------------------------------------------------------------------
def final_losses(records: Sequence[dict]) -> dict[str, dict]:
    """The last record of each split: ``{"train": {...}, "val": {...}}``."""
    last: dict[str, dict] = {}
    for record in records:
        last[record["split"]] = record
    return last


# -- attention ---------------------------------------------------------------------------------
def n_layers_of(model) -> int:
    blocks = getattr(model, "blocks", None)
    if blocks is not None:
        return len(blocks)
    return int(model.config.n_layers)


def attention_maps(model, tokenizer, text: str, *, layer: int = 0) -> tuple[torch.Tensor, list[str]]:
    """Attention weights of one layer on ``text``, from the model's own forward pass.

    -> weights (h, s, s) query × key, and the s token pieces. ``model.attention_weights(ids)`` returns
    one (b, h, s, s) tensor per layer; nothing here recomputes attention, so it cannot drift from it.
    """
    n_layers = n_layers_of(model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise TokvecValueError(
            f"layer {layer!r} is out of range: this model has {n_layers} layer"
            f"{'s' if n_layers != 1 else ''}, numbered 0..{n_layers - 1}"
        )
    if not isinstance(text, str) or not text:
        raise TokvecValueError("text is empty: give the text whose attention to draw")
    ids = tokenizer.encode(text)
    pieces = tokenizer.tokens(text)
    if len(pieces) != len(ids):  # a tokenizer whose pieces are not 1:1 with ids: label by id strings
        strings = token_strings(tokenizer)
        pieces = [strings[i] for i in ids]
    context = getattr(getattr(model, "config", None), "context_length", None)
    if context is not None and len(ids) > context:
        raise TokvecValueError(
            f"text is {len(ids)} tokens, longer than the model's context_length {context}; use a shorter text"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = model.embed.token.weight.device if hasattr(model, "embed") else None
            weights = model.attention_weights(torch.tensor([ids], dtype=torch.long, device=device), layers=layer + 1)
    finally:
        model.train(was_training)
    return weights[layer][0].detach().cpu(), pieces
