"""The seed tutorials' walk-through made executable: text -> pieces -> ids -> embedding rows -> +PE.

    >>> t = trace("你好好嗎嗎", tok, emb)
    >>> [(s.name, s.shape) for s in t.stages]
    [('text', (5,)), ('pieces', (5,)), ('ids', (1, 5)), ('token vectors', (1, 5, 64)),
     ('position vectors', (5, 64)), ('input vectors', (1, 5, 64))]

Shape legend: b = batch_size (1 here), s = seq_length, d = d_model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import TokvecValueError


@dataclass
class Stage:
    """One step of the pipeline: its name, the shape of what it produced, a note, and the value."""

    name: str
    shape: tuple[int, ...]
    note: str
    value: Any = field(repr=False, default=None)


@dataclass
class Trace:
    text: str
    pieces: list[str]
    ids: list[int]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


def trace(text: str, tokenizer, embedding) -> Trace:
    """Run ``text`` through ``tokenizer`` and an :class:`~tokvec.InputEmbedding` (or a model's ``embed``),
    recording every intermediate value with its shape.

    The final stage equals ``embedding(ids)`` in eval mode (no dropout): token rows (times the
    embedding's scale) plus, for additive schemes, the position vectors.
    """
    if not isinstance(text, str):
        raise TokvecValueError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise TokvecValueError("text is empty: give at least one character to trace")
    pieces = tokenizer.tokens(text)
    ids = tokenizer.encode(text)
    device = embedding.token.weight.device  # the embedding's device; the stages are kept as CPU copies
    batch = torch.tensor([ids], dtype=torch.long, device=device)  # (b=1, s)
    d, v = embedding.d_model, embedding.vocab_size
    positional = embedding.positional
    was_training = embedding.training
    embedding.eval()
    try:
        with torch.no_grad():
            token_vectors = embedding.token(batch).cpu()  # (1, s, d)
            out = embedding(batch).cpu()  # (1, s, d)
    finally:
        embedding.train(was_training)
    batch = batch.cpu()
    stages = [
        Stage("text", (len(text),), f"{len(text)} characters", text),
        Stage(
            "pieces", (len(pieces),), f"{type(tokenizer).__name__} splits the text into {len(pieces)} pieces", pieces
        ),
        Stage(
            "ids",
            tuple(batch.shape),
            f"(batch_size, seq_length): each piece looked up in a vocabulary of {tokenizer.vocab_size}",
            batch,
        ),
        Stage(
            "token vectors",
            tuple(token_vectors.shape),
            f"(batch_size, seq_length, d_model): each id picks its row of the ({v}, {d}) embedding table"
            + (f", times {embedding.token.scale:g}" if embedding.token.scale != 1.0 else ""),
            token_vectors,
        ),
    ]
    if positional.acts_on == "input":
        with torch.no_grad():
            pe = positional.table(len(ids)).detach().cpu().clone()  # (s, d)
        stages.append(
            Stage(
                "position vectors",
                tuple(pe.shape),
                f"(seq_length, d_model): {positional.name} vectors of positions 0..{len(ids) - 1}, "
                f"the same for every sequence of the batch",
                pe,
            )
        )
        note = "(batch_size, seq_length, d_model): token vectors + position vectors, what block 0 reads"
    else:
        how = (
            "inside attention (it rotates q and k or biases the scores)"
            if positional.acts_on == "attention"
            else "nowhere: the causal mask alone carries order"
        )
        note = f"(batch_size, seq_length, d_model): the token vectors; {positional.name} acts {how}"
    stages.append(Stage("input vectors", tuple(out.shape), note, out))
    return Trace(text, pieces, ids, stages)
