"""Data: corpus -> token ids on disk -> batches of context windows."""

from .batches import Split, eval_batches, random_batch, split_by_position
from .tokenfile import load_token_file, read_token_file_info, token_dtype, write_token_file

__all__ = [
    "load_token_file",
    "read_token_file_info",
    "token_dtype",
    "write_token_file",
    "Split",
    "eval_batches",
    "random_batch",
    "split_by_position",
]
