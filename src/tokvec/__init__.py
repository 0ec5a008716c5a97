"""tokvec: text -> token ids -> the vectors a Transformer reads, and on to a language model.

    >>> from tokvec import CharTokenizer, InputEmbedding
    >>> tok = CharTokenizer.train(["你好嗎"])
    >>> ids = tok.encode("你好好嗎嗎")
    >>> emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=64, positional="sinusoidal")
    >>> emb(torch.tensor([ids])).shape        # (batch_size, seq_length, d_model)
    torch.Size([1, 5, 64])
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .embedding import InputEmbedding, TokenEmbedding
from .errors import FormatError, TokenIdError, TokvecError, TokvecTypeError, TokvecValueError, UnknownTokenError
from .tokenizers import CharTokenizer, Tokenizer, WordTokenizer, load_tokenizer
from .vocab import Vocabulary

# --- BPE issue exports ---
from .tokenizers import BPETokenizer

# --- language-model issue exports ---
from .model import GPT, ModelConfig, SequenceClassifier  # noqa: E402
from .checkpoint import load_run, save_run  # noqa: E402
from .train import TrainConfig, TrainResult, TrainingDivergedError, train  # noqa: E402  (tokvec.train(config))

# --- viz issue exports ---

try:
    __version__ = _version("tokvec")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+src"

__all__ = [
    "Vocabulary",
    "Tokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "BPETokenizer",
    "load_tokenizer",
    "TokenEmbedding",
    "InputEmbedding",
    "TokvecError",
    "TokvecValueError",
    "TokvecTypeError",
    "FormatError",
    "TokenIdError",
    "UnknownTokenError",
    "GPT",
    "ModelConfig",
    "SequenceClassifier",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "train",
    "load_run",
    "save_run",
    "__version__",
]
