import math

import pytest
import torch

from tokvec import CharTokenizer, InputEmbedding, TokenEmbedding, TokenIdError
from tokvec.errors import TokvecTypeError, TokvecValueError
from tokvec.positional import SinusoidalPositionalEncoding, sinusoidal_table


def test_issue_example_shapes():
    tok = CharTokenizer.train(["你好嗎"])
    ids = tok.encode("你好好嗎嗎")
    emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=64, positional="sinusoidal", max_len=5000, dropout=0.1)
    x = emb(torch.tensor([ids]))
    assert x.shape == (1, 5, 64)  # (batch_size, seq_length, d_model)
    assert isinstance(emb.positional, SinusoidalPositionalEncoding)


def test_lookup_table_rows_and_repeated_ids():
    torch.manual_seed(0)
    emb = TokenEmbedding(10, 8)
    assert emb.weight.shape == (10, 8)
    x = emb(torch.tensor([[3, 3, 7]]))
    assert torch.equal(x[0, 0], emb.weight[3]) and torch.equal(x[0, 1], x[0, 0])
    assert torch.equal(x[0, 2], emb.weight[7])


def test_input_embedding_equals_lookup_plus_formula():
    torch.manual_seed(0)
    emb = InputEmbedding(vocab_size=20, d_model=6, positional="sinusoidal", dropout=0.0)
    ids = torch.tensor([[1, 5, 5, 19]])
    expected = emb.token.weight[ids] + sinusoidal_table(4, 6)
    assert torch.allclose(emb(ids), expected)


def test_positions_offset_for_cached_generation():
    torch.manual_seed(0)
    emb = InputEmbedding(vocab_size=20, d_model=8, positional="sinusoidal")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    full = emb(ids)
    tail = emb(ids[:, 3:], positions=torch.arange(3, 5))
    assert torch.allclose(full[:, 3:], tail)
    per_row = emb(ids.repeat(2, 1)[:, 3:], positions=torch.tensor([[3, 4], [0, 1]]))
    assert torch.allclose(per_row[0], full[0, 3:])
    assert torch.allclose(per_row[1], emb.token.weight[[4, 5]] + sinusoidal_table(2, 8))


def test_padding_mask_zeroes_rows(error_says):
    emb = InputEmbedding(vocab_size=10, d_model=4, positional="sinusoidal")
    ids = torch.tensor([[4, 5, 0]])
    x = emb(ids, padding_mask=ids == 0)
    assert torch.all(x[0, 2] == 0) and torch.any(x[0, 1] != 0)
    with error_says(TokvecValueError, "padding_mask", "bool", "(1, 3)"):
        emb(ids, padding_mask=torch.ones(1, 2, dtype=torch.bool))


def test_scale_multiplies_by_sqrt_d_model():
    torch.manual_seed(0)
    emb = TokenEmbedding(10, 16, scale=True)
    assert torch.allclose(emb(torch.tensor([[2]]))[0, 0], emb.weight[2] * 4.0)


def test_init_schemes(error_says):
    torch.manual_seed(0)
    normal = TokenEmbedding(2000, 64, init="normal").weight
    assert abs(normal.std().item() - 0.02) < 0.001 and abs(normal.mean().item()) < 0.001
    uniform = TokenEmbedding(2000, 64, init="uniform").weight  # torch.rand: U[0, 1)
    assert uniform.min() >= 0 and uniform.max() < 1 and abs(uniform.mean().item() - 0.5) < 0.01
    xavier = TokenEmbedding(2000, 64, init="xavier").weight
    bound = math.sqrt(6 / (2000 + 64))
    assert xavier.abs().max() <= bound and xavier.abs().max() > 0.95 * bound
    with error_says(TokvecValueError, "'he'", "normal, uniform, xavier"):
        TokenEmbedding(10, 4, init="he")


@pytest.mark.parametrize("init", ["normal", "uniform", "xavier"])
def test_padding_row_zero_and_gets_no_gradient(init):
    emb = TokenEmbedding(10, 4, padding_idx=0, init=init)
    assert torch.all(emb.weight[0] == 0)
    emb(torch.tensor([[0, 3, 0, 5]])).sum().backward()
    assert torch.all(emb.weight.grad[0] == 0)
    assert torch.all(emb.weight.grad[3] == 1) and torch.all(emb.weight.grad[5] == 1)


def test_freeze_unfreeze_and_pretrained(error_says):
    table = torch.arange(12, dtype=torch.float32).view(4, 3)
    emb = TokenEmbedding.from_pretrained(table)
    assert emb.frozen and torch.equal(emb(torch.tensor([[2]]))[0, 0], torch.tensor([6.0, 7.0, 8.0]))
    table[2, 0] = 100  # a copy: the caller's tensor stays theirs
    assert emb.weight[2, 0] == 6
    emb.unfreeze()
    assert not emb.frozen and emb.weight.requires_grad
    emb.freeze()
    assert not emb.weight.requires_grad
    trainable = TokenEmbedding.from_pretrained(torch.zeros(4, 3), freeze=False)
    assert trainable.weight.requires_grad
    with error_says(TokvecValueError, "2-D", "(vocab_size, d_model)", "(4,)"):
        TokenEmbedding.from_pretrained(torch.zeros(4))


def test_out_of_range_id_names_id_position_and_vocab_size(error_says):
    emb = InputEmbedding(vocab_size=65536, d_model=8, positional="none")
    ids = torch.tensor([[1, 2, 3, 70000]])
    with error_says(TokenIdError, "token id 70000", "(0, 3)", "vocab_size 65536"):
        emb(ids)
    with error_says(TokenIdError, "token id -2", "(1, 0)"):
        emb(torch.tensor([[1, 2], [-2, 0]]))


@pytest.mark.parametrize(
    "ids, error, facts",
    [
        (torch.tensor([[1.0, 2.0]]), TokvecTypeError, ("torch.long", "torch.float32")),
        (torch.zeros(1, 2, 3, dtype=torch.long), TokvecValueError, ("3-D", "(1, 2, 3)", "(batch, seq)")),
        ([[1, 2]], TokvecTypeError, ("torch.Tensor", "torch.tensor([ids])")),
        (torch.tensor([1, 2]), TokvecValueError, ("(batch, seq)", "1-D", "(2,)")),
    ],
)
def test_bad_ids(ids, error, facts, error_says):
    emb = InputEmbedding(vocab_size=10, d_model=4)
    with error_says(error, *facts):
        emb(ids)


def test_empty_text_gives_empty_sequence():
    tok = CharTokenizer.train(["ab"])
    emb = InputEmbedding(vocab_size=tok.vocab_size, d_model=16)
    x = emb(torch.tensor([tok.encode("")], dtype=torch.long))
    assert x.shape == (1, 0, 16)


@pytest.mark.parametrize(
    "kwargs, facts",
    [
        ({"d_model": 0}, ("d_model", "positive integer", "got 0")),
        ({"d_model": -3}, ("d_model", "positive integer", "got -3")),
        ({"vocab_size": 0}, ("vocab_size", "positive integer", "got 0")),
        ({"dropout": 1.5}, ("dropout", "[0, 1)", "1.5")),
        ({"positional": "spiral"}, ("'spiral'", "sinusoidal, learned, none")),
        ({"padding_idx": 10}, ("padding_idx 10", "vocab_size 10")),
    ],
)
def test_bad_constructor_arguments(kwargs, facts, error_says):
    args = {"vocab_size": 10, "d_model": 8, **kwargs}
    with error_says(TokvecValueError, *facts):
        InputEmbedding(**args)


def test_dropout_only_in_training():
    torch.manual_seed(0)
    emb = InputEmbedding(vocab_size=10, d_model=64, dropout=0.5)
    ids = torch.tensor([[1, 2, 3]])
    emb.eval()
    assert torch.equal(emb(ids), emb(ids))
    emb.train()
    assert (emb(ids) == 0).float().mean() > 0.3


def test_learned_positional_in_input_embedding_trains():
    emb = InputEmbedding(vocab_size=10, d_model=4, positional="learned", max_len=8)
    emb(torch.tensor([[1, 2, 3]])).sum().backward()
    grad = emb.positional.weight.grad
    assert torch.all(grad[:3] == 1) and torch.all(grad[3:] == 0)
