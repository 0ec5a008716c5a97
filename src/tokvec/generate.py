"""Sampling text from a language model: temperature, top-k, top-p, repetition penalty, stop strings,
``<eos>``, a seed, a KV cache, and streaming text as it is produced.

    >>> out = generate(model, ids, 100, temperature=0.8, top_k=50, seed=1)      # ids in, ids out
    >>> for piece in stream(model, tokenizer, "ROMEO:", 100, top_p=0.95):      # text pieces out
    ...     print(piece, end="", flush=True)

Each step turns the last position's logits (b, V) into one new id per row, in this order (the order
of Hugging Face ``transformers``' logits processors, so the options mean the same there and here):

1. repetition penalty (Keskar et al. 2019, CTRL): a logit of an id already in the row is divided by
   ``p`` when positive and multiplied by ``p`` when negative (``p > 1`` discourages repeats);
2. temperature: logits / T; ``T = 0`` means greedy (argmax; top-k and top-p then do nothing);
3. top-k: keep the k largest logits (ties with the k-th are kept);
4. top-p (nucleus, Holtzman et al. 2020): keep the smallest set of most likely ids whose
   probabilities sum to at least p (the most likely id is always kept);
5. sample from the softmax of what is left (a ``torch.Generator`` seeded with ``seed``).

The context window. The model sees at most ``context_length`` tokens, for every positional scheme
(a model is not trusted at lengths it never trained on, even when its scheme would allow them):

- without a cache, each step reads the last ``context_length`` tokens (nanoGPT's sliding window);
- with the KV cache (default), tokens are added one at a time while they fit; when the cache is
  full it is rebuilt from the last ``context_length // 2`` tokens (one re-prefill every
  ``context_length // 2`` steps; llama.cpp's "context shift" discards half the same way). Absolute
  schemes (learned, sinusoidal) need the rebuild because cached keys carry their positions; doing
  it for all schemes keeps one rule. Within the window, cache and no cache give the same logits
  (to float rounding) and the same greedy output; past it they see different windows.

A prompt longer than the window is cut to its last ``context_length`` tokens (the output still
holds the whole prompt).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor

from .errors import TokvecTypeError, TokvecValueError
from .model.decode import Decoder

if TYPE_CHECKING:  # pragma: no cover
    from .model.gpt import GPT
    from .tokenizers.base import Tokenizer


# -- options --------------------------------------------------------------------------------------
MAX_NEW_TOKENS = 10_000_000  # the ids so far are kept (repetition penalty, window): 80 MB at this length


def check_options(max_new_tokens: Any, *, temperature: Any = 1.0, top_k: Any = None, top_p: Any = None,
                  repetition_penalty: Any = 1.0, eos_id: Any = None, vocab_size: int | None = None,
                  seed: Any = None) -> None:
    """Refuse a bad sampling option before any work, naming the value, its range and the fix."""
    from ._checks import MAX_DIM, check_int_arg, check_seed

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise TokvecValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}; "
                               f"ask for at least 1 new token")
    check_int_arg("max_new_tokens", max_new_tokens, lo=1, hi=MAX_NEW_TOKENS,
                  fix="generate in several calls, feeding the end of one as the next prompt")
    check_seed("seed", seed, none_ok=True)
    if not _number(temperature) or abs(temperature) > 1e300 or not math.isfinite(temperature) or temperature < 0:
        raise TokvecValueError(f"temperature must be a finite number >= 0, got {temperature!r}; "
                               f"use 0 for greedy decoding, 1 for the model's own distribution")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise TokvecValueError(f"top_k must be a positive integer or None, got {top_k!r}; "
                               f"None (or leaving it out) keeps every token")
    if top_k is not None:
        check_int_arg("top_k", top_k, lo=1, hi=MAX_DIM, fix="None (or leaving it out) keeps every token")
    if top_p is not None and (not _number(top_p) or not 0.0 < top_p <= 1.0):
        raise TokvecValueError(f"top_p must be in (0, 1], got {top_p!r}; 1.0 (or None) keeps every token")
    if (not _number(repetition_penalty) or abs(repetition_penalty) > 1e300 or not math.isfinite(repetition_penalty)
            or repetition_penalty <= 0):
        raise TokvecValueError(f"repetition_penalty must be a finite number > 0, got {repetition_penalty!r}; "
                               f"1.0 is no penalty, 1.1-1.3 discourages repeats")
    if eos_id is not None and (isinstance(eos_id, bool) or not isinstance(eos_id, int) or
                               not 0 <= eos_id < (vocab_size if vocab_size is not None else math.inf)):
        raise TokvecValueError(f"eos_id {eos_id!r} is not a token id of this model "
                               f"(vocab_size {vocab_size}); pass tokenizer.eos_id or None")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# -- the logits processors ------------------------------------------------------------------------
def apply_repetition_penalty(logits: Tensor, ids: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty on ids already present. logits: (b, V), ids: (b, t) -> (b, V) (a new tensor).

    Worked example: logits [2.0, -1.0, 0.5], ids [[0, 1]], penalty 2 -> [1.0, -2.0, 0.5].
    """
    if penalty == 1.0:
        return logits
    seen = torch.gather(logits, 1, ids)  # (b, t)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(1, ids, seen)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits per row (ties with the k-th kept), others -> -inf. (b, V) -> (b, V).

    Worked example: [1, 3, 2, 3], k=2 -> [-inf, 3, -inf, 3]; k=3 -> [-inf, 3, 2, 3].
    """
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (b, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter: keep the most likely ids until their probability reaches ``p``. (b, V) -> (b, V).

    An id is dropped when the ids ranked above it already hold >= p of the mass, so the most likely
    id always stays. Worked example: probs [0.5, 0.3, 0.15, 0.05]: p=0.8 keeps the first two
    (0.5 < 0.8, 0.5+0.3 >= 0.8 stops there); p=0.81 keeps three; p=0.4 keeps one.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (b, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # (b, V): probability of the ids ranked above
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """One id per row from the last-position logits. logits: (b, V) -> (b,) int64."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# -- the decoding loop ----------------------------------------------------------------------------
def iter_tokens(model: "GPT", ids: Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                seed: int | None = None, use_cache: bool = True) -> Iterator[Tensor]:
    """Yield one new id per row per step: ids (b, s) -> up to ``max_new_tokens`` tensors (b,).

    The caller decides when to stop (eos, stop strings) by leaving the loop. The model must be in
    eval mode and grad disabled (``generate`` and ``stream`` see to both).
    """
    context = model.config.context_length
    keep = max(1, context // 2)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=ids.device).manual_seed(seed)
    history = ids  # (b, t): everything so far, for the repetition penalty and the window
    cache = decoder = None
    for _ in range(max_new_tokens):
        if not use_cache:
            logits = model(history[:, -context:])[0][:, -1]  # (b, V)
        elif cache is None:
            cache = model.new_cache()
            logits = model.lm_head(model.hidden(history[:, -context:], cache=cache)[:, -1])
        elif cache.length + 1 > context:  # full: rebuild from the last `keep` tokens
            cache = model.new_cache()
            logits = model.lm_head(model.hidden(history[:, -keep:], cache=cache)[:, -1])
        else:
            if decoder is None:  # built at the first one-token step, freed with this generator
                decoder = Decoder(model)
            logits = decoder.step(history[:, -1:], cache)
        logits = apply_repetition_penalty(logits.float(), history, repetition_penalty)
        token = next_token(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        history = torch.cat([history, token.unsqueeze(1)], dim=1)
        yield token


class _EvalMode:
    """Put a model in eval mode with grad off for the duration, then restore its training flag."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.grad = model, torch.no_grad()

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()
        self.grad.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.grad.__exit__(*exc)
        self.model.train(self.was_training)


def _as_batch(model: "GPT", ids: Any) -> tuple[Tensor, bool]:
    """ids as (b, s) on the model's device, and whether the caller gave one row (s,) or a list."""
    if isinstance(ids, (list, tuple)):
        ids = torch.tensor(ids, dtype=torch.long)
    if not isinstance(ids, Tensor):
        raise TokvecTypeError(f"ids must be a tensor (or list) of token ids, got {type(ids).__name__}")
    from .embedding import check_ids

    check_ids(ids, model.config.vocab_size)  # type, rank, range: before reshaping, so positions read as given
    single = ids.dim() == 1
    if single:
        ids = ids.unsqueeze(0)
    if ids.shape[1] == 0:
        raise TokvecValueError("the prompt is empty (0 tokens); give at least one token, e.g. tokenizer.bos_id")
    device = next(model.parameters()).device
    return ids.to(device), single


def _stop_list(stop: Sequence[str] | str | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stops):
        raise TokvecValueError(f"stop must be a non-empty string or a list of them, got {stop!r}")
    return stops


def generate(model: "GPT", ids: Tensor | Sequence[int], max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
             eos_id: int | None = None, stop: Sequence[str] | str | None = None, tokenizer: "Tokenizer | None" = None,
             seed: int | None = None, use_cache: bool = True) -> Tensor:
    """Continue ``ids``: (b, s) -> (b, s + n), or (s,) -> (s + n,), with n <= max_new_tokens.

    eos_id: a row that samples it is finished; the eos is kept, later positions of that row repeat
        it (padding) until every row is finished, then generation stops.
    stop: strings that finish a row once its new text contains one (the ids include the token that
        completed it; :func:`stream` trims the text instead). Needs ``tokenizer`` to read the text.
        A finished row is padded with ``eos_id`` when given; without one it keeps sampling until
        every row is finished, so cut its text at the stop string.
    seed: a private generator, so the same seed gives the same ids whatever else uses torch's RNG.
    """
    check_options(max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                  repetition_penalty=repetition_penalty, eos_id=eos_id, vocab_size=model.config.vocab_size,
                  seed=seed)
    stops = _stop_list(stop)
    if stops and tokenizer is None:
        raise TokvecValueError("stop strings need the tokenizer to read the text: pass tokenizer=...")
    batch, single = _as_batch(model, ids)
    b = batch.shape[0]
    finished = torch.zeros(b, dtype=torch.bool, device=batch.device)
    decoders = [tokenizer.stream_decoder() for _ in range(b)] if stops else []
    texts = [""] * b
    longest = max((len(s) for s in stops), default=0)
    new: list[Tensor] = []
    with _EvalMode(model):
        for token in iter_tokens(model, batch, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                 repetition_penalty=repetition_penalty, seed=seed, use_cache=use_cache):
            if eos_id is not None:
                token = token.masked_fill(finished, eos_id)
            new.append(token)
            if eos_id is not None:
                finished |= token == eos_id
            for row in range(len(decoders)):
                if finished[row]:
                    continue
                piece = decoders[row].push(int(token[row]))
                tail = texts[row][-longest:] + piece  # a stop string may straddle pieces
                texts[row] = tail
                if any(s in tail for s in stops):
                    finished[row] = True
            if (eos_id is not None or stops) and bool(finished.all()):
                break
    out = torch.cat([batch, torch.stack(new, dim=1)], dim=1)
    return out[0] if single else out


def encode_prompt(tokenizer: "Tokenizer", prompt: str) -> list[int]:
    """The prompt's ids; pieces outside the vocabulary become ``<unk>`` with a warning naming them.

    An empty prompt starts from ``<bos>`` when the tokenizer has one.
    """
    if not isinstance(prompt, str):
        raise TokvecTypeError(f"prompt must be a string, got {type(prompt).__name__}")
    ids = list(tokenizer.encode(prompt))
    unk = getattr(tokenizer, "unk_id", None)
    if unk is not None and unk in ids:
        pieces = tokenizer.tokens(prompt) if hasattr(tokenizer, "tokens") else []
        unknown = sorted({p for p, i in zip(pieces, ids) if i == unk}) if len(pieces) == len(ids) else []
        shown = ", ".join(map(repr, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        warnings.warn(f"{ids.count(unk)} prompt piece(s) are not in the tokenizer's vocabulary"
                      f"{' (' + shown + ')' if shown else ''}; they were encoded as <unk>", stacklevel=2)
    if not ids:
        bos = getattr(tokenizer, "bos_id", None)
        if bos is None:
            raise TokvecValueError("the prompt is empty and the tokenizer has no <bos> to start from; "
                                   "give a prompt of at least one character")
        ids = [bos]
    return ids


def stream(model: "GPT", tokenizer: "Tokenizer", prompt: str, max_new_tokens: int, *, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
           eos_id: int | None = None, stop_at_eos: bool = True, stop: Sequence[str] | str | None = None,
           seed: int | None = None, use_cache: bool = True) -> Iterator[str]:
    """Generate from a text prompt, yielding the new text piece by piece as it is produced.

    Decoding goes through ``tokenizer.stream_decoder()`` (a byte-level tokenizer holds back
    half-made characters). Generation ends at ``eos_id`` (default: the tokenizer's ``<eos>``; the
    eos itself is not yielded) unless ``stop_at_eos=False``. ``stop``: generation ends before the first stop string, which is not yielded (text
    that might be the start of a stop string is held back until it is clear it is not).
    """
    if not stop_at_eos:
        eos_id = None
    elif eos_id is None:
        eos_id = getattr(tokenizer, "eos_id", None)
    check_options(max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                  repetition_penalty=repetition_penalty, eos_id=eos_id, vocab_size=model.config.vocab_size,
                  seed=seed)
    stops = _stop_list(stop)
    batch, _ = _as_batch(model, encode_prompt(tokenizer, prompt))
    decoder = tokenizer.stream_decoder()
    pending = ""
    with _EvalMode(model):
        tokens = iter_tokens(model, batch, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                             repetition_penalty=repetition_penalty, seed=seed, use_cache=use_cache)
        for token in tokens:
            tid = int(token[0])
            if tid == eos_id:
                break
            pending += decoder.push(tid)
            ready, pending, hit = _split_at_stop(pending, stops)
            if ready:
                yield ready
            if hit:
                return
    pending += decoder.flush()
    ready, _, _ = _split_at_stop(pending, stops, final=True)
    if ready:
        yield ready


def _split_at_stop(text: str, stops: list[str], final: bool = False) -> tuple[str, str, bool]:
    """(text safe to emit, text held back, whether a stop string was found).

    Worked example: stops ["\\n\\n"]: "ab\\n" -> ("ab", "\\n", False); "ab\\n\\ncd" -> ("ab", "", True).
    """
    if not stops:
        return text, "", False
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    if hits:
        return text[:min(hits)], "", True
    if final:
        return text, "", False
    hold = 0
    for s in stops:  # the longest tail of text that could still grow into a stop string
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if s.startswith(text[-n:]):
                hold = n
                break
    return text[:len(text) - hold], text[len(text) - hold:], False
