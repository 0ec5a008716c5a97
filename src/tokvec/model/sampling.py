"""The sampling loop beside the model: logits processors, one id per step, ``generate`` on ids.

:mod:`tokvec.generate` builds text-level generation (prompts, streaming, stop strings held back
mid-word) on top of this; the options and the context-window rule are documented there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch
from torch import Tensor

from ..embedding import check_ids
from ..errors import TokvecTypeError, TokvecValueError
from .fast.decode import Decoder

if TYPE_CHECKING:  # pragma: no cover
    from ..tokenizers.base import Tokenizer
    from .gpt import GPT


# The one default temperature of every sampler tokvec offers (generate, stream, GPT.generate, the CLI's
# generate and train --sample, the report): a little sharper than the model's own distribution.
DEFAULT_TEMPERATURE = 0.8


# -- options --------------------------------------------------------------------------------------
MAX_NEW_TOKENS = 10_000_000  # the ids so far are kept (repetition penalty, window): 80 MB at this length


def check_options(
    max_new_tokens: Any,
    *,
    temperature: Any = 1.0,
    top_k: Any = None,
    top_p: Any = None,
    repetition_penalty: Any = 1.0,
    eos_id: Any = None,
    vocab_size: int | None = None,
    seed: Any = None,
) -> None:
    """Refuse a bad sampling option before any work, naming the value, its range and the fix."""
    from .._checks import MAX_DIM, check_int_arg, check_seed

    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise TokvecValueError(
            f"max_new_tokens must be a positive integer, got {max_new_tokens!r}; ask for at least 1 new token"
        )
    check_int_arg(
        "max_new_tokens",
        max_new_tokens,
        lo=1,
        hi=MAX_NEW_TOKENS,
        fix="generate in several calls, feeding the end of one as the next prompt",
    )
    check_seed("seed", seed, none_ok=True)
    if not _number(temperature) or abs(temperature) > 1e300 or not math.isfinite(temperature) or temperature < 0:
        raise TokvecValueError(
            f"temperature must be a finite number >= 0, got {temperature!r}; "
            f"use 0 for greedy decoding, 1 for the model's own distribution"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise TokvecValueError(
            f"top_k must be a positive integer or None, got {top_k!r}; None (or leaving it out) keeps every token"
        )
    if top_k is not None:
        check_int_arg("top_k", top_k, lo=1, hi=MAX_DIM, fix="None (or leaving it out) keeps every token")
    if top_p is not None and (not _number(top_p) or not 0.0 < top_p <= 1.0):
        raise TokvecValueError(f"top_p must be in (0, 1], got {top_p!r}; 1.0 (or None) keeps every token")
    if (
        not _number(repetition_penalty)
        or abs(repetition_penalty) > 1e300
        or not math.isfinite(repetition_penalty)
        or repetition_penalty <= 0
    ):
        raise TokvecValueError(
            f"repetition_penalty must be a finite number > 0, got {repetition_penalty!r}; "
            f"1.0 is no penalty, 1.1-1.3 discourages repeats"
        )
    if eos_id is not None and (
        isinstance(eos_id, bool)
        or not isinstance(eos_id, int)
        or not 0 <= eos_id < (vocab_size if vocab_size is not None else math.inf)
    ):
        raise TokvecValueError(
            f"eos_id {eos_id!r} is not a token id of this model "
            f"(vocab_size {vocab_size}); pass tokenizer.eos_id or None"
        )


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


def sampling_probs(
    logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """The distribution :func:`next_token` samples from. logits: (b, V) -> probabilities (b, V), rows sum to 1.

    Steps 2-4 of the module docstring: logits / T, top-k, top-p, softmax. ``T = 0`` (greedy) puts
    all the mass on the argmax (the first one on a tie).
    """
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(dim=-1)


def next_token(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One id per row from the last-position logits. logits: (b, V) -> (b,) int64."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# -- the decoding loop ----------------------------------------------------------------------------
def iter_tokens(
    model: "GPT",
    ids: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int | None = None,
    use_cache: bool = True,
) -> Iterator[Tensor]:
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
        if not bool(torch.isfinite(logits).all()):  # multinomial would fail obscurely, argmax silently
            raise TokvecValueError(
                f"the model's logits hold NaN or infinite values (generating token "
                f"{history.shape[1] - ids.shape[1] + 1}): its weights are damaged or its "
                f"training diverged; train it again (e.g. with a lower --lr)"
            )
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


def generate(
    model: "GPT",
    ids: Tensor | Sequence[int],
    max_new_tokens: int,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_id: int | None = None,
    stop: Sequence[str] | str | None = None,
    tokenizer: "Tokenizer | None" = None,
    seed: int | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Continue ``ids``: (b, s) -> (b, s + n), or (s,) -> (s + n,), with n <= max_new_tokens.

    eos_id: a row that samples it is finished; the eos is kept, later positions of that row repeat
        it (padding) until every row is finished, then generation stops.
    stop: strings that finish a row once its new text contains one (the ids include the token that
        completed it; :func:`stream` trims the text instead). Needs ``tokenizer`` to read the text.
        A finished row is padded with ``eos_id`` when given; without one it keeps sampling until
        every row is finished, so cut its text at the stop string.
    seed: a private generator, so the same seed gives the same ids whatever else uses torch's RNG.
    """
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
        for token in iter_tokens(
            model,
            batch,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
            use_cache=use_cache,
        ):
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
