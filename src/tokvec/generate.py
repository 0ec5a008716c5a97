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

import warnings
from typing import TYPE_CHECKING, Iterator, Sequence

from .errors import TokvecTypeError, TokvecValueError
from .model.sampling import (
    DEFAULT_TEMPERATURE,
    _as_batch,
    _EvalMode,
    _stop_list,
    apply_repetition_penalty,
    check_options,
    generate,
    iter_tokens,
    next_token,
    sampling_probs,
    top_k_filter,
    top_p_filter,
)

if TYPE_CHECKING:  # pragma: no cover
    from .model.gpt import GPT
    from .tokenizers.base import Tokenizer

__all__ = [
    "DEFAULT_TEMPERATURE",
    "check_options",
    "apply_repetition_penalty",
    "top_k_filter",
    "top_p_filter",
    "sampling_probs",
    "next_token",
    "iter_tokens",
    "generate",
    "encode_prompt",
    "stream",
]


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
        warnings.warn(
            f"{ids.count(unk)} prompt piece(s) are not in the tokenizer's vocabulary"
            f"{' (' + shown + ')' if shown else ''}; they were encoded as <unk>",
            stacklevel=2,
        )
    if not ids:
        bos = getattr(tokenizer, "bos_id", None)
        if bos is None:
            raise TokvecValueError(
                "the prompt is empty and the tokenizer has no <bos> to start from; "
                "give a prompt of at least one character"
            )
        ids = [bos]
    return ids


def stream(
    model: "GPT",
    tokenizer: "Tokenizer",
    prompt: str,
    max_new_tokens: int,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_id: int | None = None,
    stop_at_eos: bool = True,
    stop: Sequence[str] | str | None = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> Iterator[str]:
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
    check_options(
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        eos_id=eos_id,
        vocab_size=model.config.vocab_size,
        seed=seed,
    )
    stops = _stop_list(stop)
    batch, _ = _as_batch(model, encode_prompt(tokenizer, prompt))
    decoder = tokenizer.stream_decoder()
    pending = ""
    with _EvalMode(model):
        tokens = iter_tokens(
            model,
            batch,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
            use_cache=use_cache,
        )
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
        return text[: min(hits)], "", True
    if final:
        return text, "", False
    hold = 0
    for s in stops:  # the longest tail of text that could still grow into a stop string
        for n in range(min(len(s) - 1, len(text)), hold, -1):
            if s.startswith(text[-n:]):
                hold = n
                break
    return text[: len(text) - hold], text[len(text) - hold :], False
