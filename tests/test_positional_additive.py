"""Sinusoidal, learned and none schemes, and the registry (the foundation's positional part)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokvec.errors import TokvecTypeError, TokvecValueError
from tokvec.positional import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    SinusoidalPositionalEncoding,
    build,
    sinusoidal_table,
)


def _formula(pos: int, j: int, d: int) -> float:
    """Vaswani et al. 2017 §3.5, written literally: column j = 2i (sin) or 2i+1 (cos)."""
    i = j // 2
    angle = pos / (10000 ** (2 * i / d))
    return math.sin(angle) if j % 2 == 0 else math.cos(angle)


def test_worked_values():
    pe = sinusoidal_table(4, 8)
    assert pe[1, 0].item() == pytest.approx(math.sin(1))  # PE[1, 0] = sin(1 / 10000^0)
    assert pe[1, 1].item() == pytest.approx(math.cos(1))
    assert pe[0, 0::2].abs().max().item() == 0 and torch.all(pe[0, 1::2] == 1)
    # PE[2, 2] = sin(2 / 10000^(2/8)) = sin(0.2)
    assert pe[2, 2].item() == pytest.approx(math.sin(0.2), abs=1e-7)


@pytest.mark.parametrize("d", [4, 7, 64, 65])
def test_table_equals_formula(d):
    pe = sinusoidal_table(50, d)
    ref = torch.tensor([[_formula(p, j, d) for j in range(d)] for p in range(50)])
    assert pe.shape == (50, d)
    assert torch.allclose(pe, ref, atol=1e-6)


def test_halves_layout_is_a_column_permutation_of_interleaved(error_says):
    inter, halves = sinusoidal_table(30, 16), sinusoidal_table(30, 16, layout="halves")
    assert torch.allclose(halves[:, :8], inter[:, 0::2]) and torch.allclose(halves[:, 8:], inter[:, 1::2])
    with error_says(TokvecValueError, "'zigzag'", "interleaved, halves"):
        SinusoidalPositionalEncoding(16, layout="zigzag")


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 60))
def test_dot_product_depends_only_on_offset(p, q, k):
    pe = sinusoidal_table(300, 32, dtype=torch.float64)
    assert (pe[p] @ pe[p + k]).item() == pytest.approx((pe[q] @ pe[q + k]).item(), abs=1e-9)


def test_shift_is_a_fixed_linear_map():
    # PE(pos + k) = M_k PE(pos), with M_k block-diagonal 2x2 rotations by w_i * k
    d, k = 16, 5
    pe = sinusoidal_table(100, d, dtype=torch.float64)
    w = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    m = torch.zeros(d, d, dtype=torch.float64)
    for i, wi in enumerate(w):
        c, s = math.cos(wi * k), math.sin(wi * k)
        # [sin(a+b), cos(a+b)] = [[cos b, sin b], [-sin b, cos b]] @ [sin a, cos a]
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    assert torch.allclose(pe[k:], pe[:-k] @ m.T, atol=1e-10)


def test_grows_past_max_len_and_extension_equals_formula():
    enc = SinusoidalPositionalEncoding(12, max_len=10)
    assert enc.max_len == 10
    x = torch.zeros(1, 25, 12)
    out = enc(x)
    assert enc.max_len >= 25
    assert torch.allclose(out[0], sinusoidal_table(25, 12), atol=1e-6)
    rows = enc.pe(torch.tensor([3, 40]))
    assert torch.allclose(rows, sinusoidal_table(41, 12)[[3, 40]], atol=1e-6)


def test_buffer_is_not_saved():
    enc = SinusoidalPositionalEncoding(8, max_len=16)
    assert "_pe" not in enc.state_dict() and len(list(enc.parameters())) == 0


def test_forward_does_not_modify_input_but_add_does():
    enc = SinusoidalPositionalEncoding(4)
    x = torch.zeros(2, 3, 4)
    y = enc(x)
    assert torch.all(x == 0) and torch.allclose(y[1], sinusoidal_table(3, 4))
    enc.add_(x)
    assert torch.allclose(x, y)


def test_positions_validation(error_says):
    enc = SinusoidalPositionalEncoding(4)
    x = torch.zeros(2, 3, 4)
    with error_says(TokvecValueError, ">= 0", "-1"):
        enc.add_(x, torch.tensor([-1, 0, 1]))
    with error_says(TokvecValueError, "(4,)", "(3,) or (2, 3)"):
        enc.add_(x, torch.arange(4))
    with error_says(TokvecTypeError, "integer", "torch.float32"):
        enc.add_(x, torch.tensor([0.0, 1.0, 2.0]))


def test_learned_table_limit_names_both_numbers(error_says):
    enc = LearnedPositionalEncoding(8, max_len=16)
    assert enc.table(16).shape == (16, 8)
    with error_says(TokvecValueError, "position 16", "max_len 16"):
        enc(torch.zeros(1, 17, 8))
    with error_says(TokvecValueError, "position 20", "max_len 16"):
        enc.pe(torch.tensor([1, 20]))


def test_none_scheme_changes_nothing():
    enc = NoPositionalEncoding()
    x = torch.randn(2, 3, 4)
    assert enc(x) is x and enc.score_bias(3, 3) is None
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    assert enc.rotate(q, k, torch.arange(3)) == (q, k)


def test_registry_build_and_errors(error_says):
    assert isinstance(build("sinusoidal", d_model=8, max_len=10, n_heads=2, head_dim=4), SinusoidalPositionalEncoding)
    assert build("sinusoidal", d_model=8, layout="halves").layout == "halves"
    assert isinstance(build("none", d_model=8, max_len=10), NoPositionalEncoding)
    with error_says(TokvecValueError, "'sinusodal'", "known schemes: sinusoidal"):
        build("sinusodal", d_model=8)
    with error_says(TokvecValueError, "'learned'", "'layout'", "std"):
        build("learned", d_model=8, layout="halves")
