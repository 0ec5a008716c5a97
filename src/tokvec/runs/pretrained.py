"""Where a fine-tune starts: a tokvec run directory or a local Hugging Face model directory, loaded as
``(model, tokenizer)`` with the tokenizer checked against the model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import FormatError
from ..model.gpt import GPT
from ..model.hf import HFModelError, SafetensorsIndex, config_from_hf, is_hf_directory, read_hf_config
from . import checkpoint as ckpt


def load_hf_tokenizer(source: str | os.PathLike, tokenizer: str | os.PathLike | None = None):
    """The tokenizer of a HF directory (its tokenizer.json), or the file ``tokenizer`` names instead."""
    from ..tokenizers import load_tokenizer

    path = Path(tokenizer) if tokenizer is not None else Path(source) / "tokenizer.json"
    hint = (
        "import the weights with --tokenizer PATH (Python: tokenizer=PATH) naming a tokenizer tokvec reads "
        "whose ids match the model: a tokvec tokenizer file, a .tiktoken rank file or a byte-level BPE "
        "tokenizer.json"
    )
    if not path.is_file():
        raise HFModelError(f"{path} does not exist; {hint}")
    try:
        return load_tokenizer(path)
    except FormatError as e:
        raise HFModelError(f"tokvec cannot read the tokenizer {path}: {e}. To use the model anyway, {hint}") from None


def load_hf(
    source: str | os.PathLike,
    *,
    tokenizer: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
):
    """``(model, tokenizer, hf_config)`` of a local HF directory; the tokenizer's ids must fit the model.

    ``progress(done_bytes, total_bytes)`` follows the weights being read."""
    hf = read_hf_config(source)
    config_from_hf(hf, source=str(Path(source) / "config.json"))  # unsupported fields fail before any reading
    SafetensorsIndex(source).close()  # so do pickle-only and broken weight files (headers only)
    tok = load_hf_tokenizer(source, tokenizer)
    model = GPT.from_pretrained(source, progress=progress)
    if tok.vocab_size > model.config.vocab_size:
        raise HFModelError(
            f"the tokenizer has {tok.vocab_size} ids but the model's vocab_size is "
            f"{model.config.vocab_size}; pass the tokenizer this model was trained with"
        )
    return model, tok, hf


def init_source(path: str | os.PathLike, *, dropout: float | None = None):
    """``(model, tokenizer)`` to fine-tune from: a tokvec run directory or a local HF model directory.
    ``dropout`` (when given) replaces the model's."""
    if is_hf_directory(path):
        model, tokenizer, _ = load_hf(path)
    else:
        model, tokenizer, _ = ckpt.load_run(path)
    if dropout is not None and dropout != model.config.dropout:
        model.set_dropout(dropout)  # in place: no second model beside the loaded weights
    return model, tokenizer
