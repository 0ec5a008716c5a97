"""The shapes of the Transformer input layer: (batch_size, seq_length) ids -> (batch_size, seq_length, d_model).

Run:  python examples/shapes.py

The classic tutorials build the lookup table with ``torch.rand`` (uniform in [0, 1)); tokvec's
``init="uniform"`` is the same table. A token id outside the table is refused with an error that
names the id, where it is and the valid range, before PyTorch's own (opaque) index error.
"""

import torch

from tokvec import InputEmbedding, TokenEmbedding, TokenIdError

torch.manual_seed(0)
batch_size, seq_length, d_model, vocab_size = 2, 5, 8, 7

# 1. Token ids: one row per sequence of the batch.
ids = torch.tensor(
    [
        [4, 5, 5, 6, 6],  # 你 好 好 嗎 嗎 in the tutorials' char vocabulary
        [4, 5, 6, 0, 0],
    ]
)  # 你 好 嗎, padded with id 0
print("ids (batch_size, seq_length) =", tuple(ids.shape))

# 2. The lookup table: vocab_size rows of d_model numbers, torch.rand style.
table = TokenEmbedding(vocab_size, d_model, init="uniform")
print(
    "table (vocab_size, d_model) =",
    tuple(table.weight.shape),
    " values in [0, 1):",
    bool((table.weight >= 0).all() and (table.weight < 1).all()),
)
vectors = table(ids)  # row ids[b, s] of the table, for every b and s
print("token vectors (batch_size, seq_length, d_model) =", tuple(vectors.shape))
assert torch.equal(vectors[0, 1], table.weight[5])  # a lookup is just indexing the table

# 3. The input stage: token vectors + sinusoidal position vectors (+ dropout in training).
emb = InputEmbedding(vocab_size, d_model, positional="sinusoidal", init="uniform", dropout=0.1).eval()
x = emb(ids)
print("input to the first block (batch_size, seq_length, d_model) =", tuple(x.shape))

# 4. An id the table has no row for: a clear error, not an IndexError from deep inside torch.
try:
    table(torch.tensor([[4, 5, 9]]))
except TokenIdError as e:
    print("out of range ->", e)
