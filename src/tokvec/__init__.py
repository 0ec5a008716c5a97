"""tokvec: text -> token ids -> the vectors a Transformer reads, and on to a language model.

    >>> from tokvec import CharTokenizer, InputEmbedding
    >>> tok = CharTokenizer.train(["你好嗎"])
    >>> ids = tok.encode("你好好嗎嗎")
    >>> emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=64, positional="sinusoidal")
    >>> emb(torch.tensor([ids])).shape        # (batch_size, seq_length, d_model)
    torch.Size([1, 5, 64])

The names below are imported on first use (a module ``__getattr__``, PEP 562), so ``import tokvec``
and ``tokvec --help`` stay free of torch until a name that needs it is touched.
"""

from __future__ import annotations

import importlib

# not `from typing import TYPE_CHECKING`: typing (and the re, enum, collections it pulls in) would be
# most of what `tokvec --help` costs beyond a bare interpreter
TYPE_CHECKING = False

# public name -> the module that defines it
_EXPORTS = {
    "Vocabulary": ".vocab",
    "Tokenizer": ".tokenizers",
    "CharTokenizer": ".tokenizers",
    "WordTokenizer": ".tokenizers",
    "BPETokenizer": ".tokenizers",
    "load_tokenizer": ".tokenizers",
    "read_word_vectors": ".tokenizers.word_vectors",
    "WordVectors": ".tokenizers.word_vectors",
    "TokenEmbedding": ".embedding",
    "InputEmbedding": ".embedding",
    "TokvecError": ".errors",
    "TokvecValueError": ".errors",
    "TokvecTypeError": ".errors",
    "FormatError": ".errors",
    "TokenIdError": ".errors",
    "UnknownTokenError": ".errors",
    "GPT": ".model",
    "ModelConfig": ".model",
    "SequenceClassifier": ".model",
    "TrainConfig": ".runs.train",
    "TrainResult": ".runs.train",
    "TrainingDivergedError": ".runs.train",
    "train": ".runs.train",
    "load_run": ".runs.checkpoint",
    "load_model": ".runs.checkpoint",
    "save_run": ".runs.checkpoint",
    "ClassifyConfig": ".runs.classify",
    "train_classifier": ".runs.classify",
    "load_classifier": ".runs.classify",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> object:
    if name == "__version__":
        from ._version import version

        globals()[name] = value = version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tokvec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function; `tokvec.train` stays the function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "__version__"})


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .embedding import InputEmbedding, TokenEmbedding
    from .errors import FormatError, TokenIdError, TokvecError, TokvecTypeError, TokvecValueError, UnknownTokenError
    from .model import GPT, ModelConfig, SequenceClassifier
    from .runs.checkpoint import load_model, load_run, save_run
    from .runs.classify import ClassifyConfig, load_classifier, train_classifier
    from .runs.train import TrainConfig, TrainingDivergedError, TrainResult, train
    from .tokenizers import BPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, load_tokenizer
    from .tokenizers.word_vectors import WordVectors, read_word_vectors
    from .vocab import Vocabulary
