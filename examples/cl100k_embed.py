"""A 100,256-token BPE vocabulary (tiktoken's cl100k_base), d_model 64, a 16-token context.

Run:  python examples/cl100k_embed.py [PATH/TO/cl100k_base.tiktoken]

The same as the command
    tokvec embed --tokenizer cl100k_base --d-model 64 --context 16 "小沈阳江西演唱会邀请了,"
written out with the library. tokvec never downloads: cl100k_base must be in tiktoken's cache
(where ``tiktoken.get_encoding("cl100k_base")`` leaves it) or given as a path; without it the error
says which file to fetch and where to put it. With the real file the table is (100256, 64):
6,416,384 parameters.
"""

import sys

import torch

from tokvec import InputEmbedding, TokvecError, load_tokenizer
from tokvec.embedding import fit_to_context

text, d_model, context = "小沈阳江西演唱会邀请了,", 64, 16

try:
    tok = load_tokenizer(sys.argv[1] if len(sys.argv) > 1 else "cl100k_base")
except TokvecError as e:  # not cached and no path given: the message says what to download, from where
    sys.exit(f"error: {e}")
pieces, ids = tok.tokens(text), tok.encode(text)
print("pieces:", pieces)  # a piece that cuts a character in the middle shows its bytes as \xNN
print("ids:", ids, f"({len(ids)} tokens)")

# The table needs a row per id plain text can produce: the 100,256 ranks (the 5 special tokens
# live above them and never come out of ordinary text).
torch.manual_seed(0)
emb = InputEmbedding(tok.text_vocab_size, d_model, positional="sinusoidal").eval()
rows, cols = emb.token.weight.shape
print(f"embedding table (vocab_size, d_model) = ({rows}, {cols}): {emb.token.weight.numel():,} parameters")

# Every sequence of a batch has the model's context length: pad short texts, crop long ones.
fitted = fit_to_context(ids, context, pad_id=0)  # cl100k has no <pad>: id 0, masked out
print(f"context {context}:", fitted.describe())
batch = torch.tensor([fitted.ids])  # (batch_size, seq_length) = (1, 16)
mask = torch.tensor([fitted.padding_mask])  # True at the padding
with torch.no_grad():
    x = emb(batch, padding_mask=mask)  # (batch_size, seq_length, d_model) = (1, 16, 64)
print(
    "ids (batch_size, seq_length) =",
    tuple(batch.shape),
    "-> vectors (batch_size, seq_length, d_model) =",
    tuple(x.shape),
)
print("padding rows are zero:", bool((x[mask] == 0).all()))
