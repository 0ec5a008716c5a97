"""Positional schemes beyond the foundation: rope, alibi, relative (Shaw), t5, xl; registry; bad input.

Reference numbers are pinned in the file with their source; no reference library is imported.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokvec.errors import TokvecValueError
from tokvec.positional import (
    ALiBiPositionalEncoding,
    RotaryPositionalEncoding,
    ShawRelativePositionalEncoding,
    T5RelativePositionalEncoding,
    TransformerXLPositionalEncoding,
    alibi_slopes,
    available,
    build,
    rope_frequencies,
    sinusoidal_table,
    t5_bucket,
)

ALL = ["sinusoidal", "learned", "none", "rope", "alibi", "relative", "t5", "xl", "cape"]
# the fixed input every pinned RoPE number was computed from
X = torch.sin(torch.arange(24, dtype=torch.float32) * 0.37 + 0.1).reshape(3, 8)


# -- registry -------------------------------------------------------------------------------------


def test_every_scheme_is_registered_and_builds_from_the_model_context():
    assert set(available()) == set(ALL)
    for name in ALL:
        scheme = build(name, d_model=32, n_heads=4, head_dim=8, max_len=64)
        assert scheme.name == name
        assert scheme.acts_on == (
            "input" if name in ("sinusoidal", "learned", "cape") else "none" if name == "none" else "attention"
        )


@pytest.mark.parametrize("name", available())
def test_declared_capabilities_agree_with_what_the_scheme_does(name):
    # attention and GPT choose their paths from these declarations alone, so a wrong one is a wrong answer
    from tokvec import GPT, ModelConfig

    scheme = build(name, d_model=32, n_heads=4, head_dim=8, max_len=8)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 5, 8, generator=g), torch.randn(2, 4, 5, 8, generator=g)
    rq, rk = scheme.rotate(q, k, torch.arange(1, 6))
    assert (not torch.equal(rq, q) or not torch.equal(rk, k)) == scheme.rotates
    assert (scheme.score_bias(5, 5) is not None) == scheme.has_score_bias
    assert (scheme.score_term(q, k) is not None) == scheme.has_score_term
    assert scheme.adds_scores == (scheme.has_score_bias or scheme.has_score_term)
    model = GPT(ModelConfig(vocab_size=11, context_length=8, d_model=32, n_layers=1, n_heads=4, positional=name))
    ids = torch.zeros(1, 12, dtype=torch.long)  # 12 tokens > context_length 8
    if scheme.extrapolates:
        assert model(ids)[0].shape == (1, 12, 11)
    else:
        with pytest.raises(TokvecValueError, match=r"12 tokens.*context_length 8"):
            model(ids)


def test_unknown_scheme_lists_the_known_ones(error_says):
    with error_says(TokvecValueError, "'rotary'", "sinusoidal, learned, none, rope, alibi, relative, t5, xl, cape"):
        build("rotary", d_model=32)


def test_unknown_option_names_the_scheme_and_its_options(error_says):
    with error_says(TokvecValueError, "'alibi'", "'base'", "(none)"):
        build("alibi", d_model=32, n_heads=4, base=10)
    with error_says(TokvecValueError, "'rope'", "'theta'", "base, factor, layout, original_max_len, scaling"):
        build("rope", d_model=32, n_heads=4, theta=10)


@pytest.mark.parametrize("name", ["rope", "relative", "xl"])
def test_heads_must_divide_d_model(name, error_says):
    with error_says(TokvecValueError, "n_heads (3)", "d_model (32)"):
        build(name, d_model=32, n_heads=3)


@pytest.mark.parametrize("name", ["rope", "alibi", "relative", "t5", "xl"])
def test_attention_schemes_need_the_head_count(name, error_says):
    with error_says(TokvecValueError, f"'{name}'", "n_heads="):
        build(name, d_model=32)


def test_positions_beyond_a_learned_table_name_both_numbers(error_says):
    learned = build("learned", d_model=8, max_len=16)
    with error_says(TokvecValueError, "position 19", "max_len 16", "0..15"):
        learned.pe(torch.tensor([3, 19]))
    with error_says(TokvecValueError, "position 16", "max_len 16"):
        learned.table(4, offset=13)


@pytest.mark.parametrize("name", ["alibi", "t5", "relative", "xl"])
def test_negative_offsets_are_refused(name, error_says):
    scheme = build(name, d_model=16, n_heads=2)
    q = k = torch.zeros(1, 2, 3, 8)
    with error_says(TokvecValueError, ">= 0", "offset -1"):
        scheme.score_bias(3, 3, -1) if name in ("alibi", "t5") else scheme.score_term(q, k, -1)


# -- RoPE -----------------------------------------------------------------------------------------


def rope(**options) -> RotaryPositionalEncoding:
    return build("rope", head_dim=8, n_heads=1, **options)


ROPE_64 = {
    layout: build("rope", head_dim=64, n_heads=1, layout=layout, max_len=10001) for layout in ("interleaved", "halves")
}


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(0, 5000),
    n=st.integers(0, 5000),
    shift=st.integers(0, 5000),
    layout=st.sampled_from(["interleaved", "halves"]),
    seed=st.integers(0, 2**16),
)
def test_rope_score_depends_only_on_the_offset(m, n, shift, layout, seed):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 64, generator=g).unbind(0)
    r = ROPE_64[layout]

    def score(i: int, j: int) -> float:
        return float(r.apply(q.view(1, 64), torch.tensor([i])) @ r.apply(k.view(1, 64), torch.tensor([j])).T)

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=2e-4)


def test_rope_keeps_vector_lengths_and_leaves_position_zero_alone():
    r = rope()
    y = r.apply(X, torch.tensor([0, 7, 3000]))
    torch.testing.assert_close(y.norm(dim=-1), X.norm(dim=-1))
    torch.testing.assert_close(y[0], X[0])


# rotary-embedding-torch 0.9.1: RotaryEmbedding(dim=8, **kw).rotate_queries_or_keys(X, seq_dim=-2, offset=o),
# which is interleaved with theta = 10000; interpolate_factor = position interpolation ("linear"),
# theta_rescale_factor = NTK-aware base scaling ("ntk"). Rounded to 6 decimals.
ROTARY_EMBEDDING_TORCH = {
    ("none", 5): [
        [0.462603, 0.032734, 0.204928, 1.178081, 0.952279, 0.977776, 0.73004, 0.440055],
        [-0.001217, -0.29587, -0.021384, -1.052363, -0.924608, -1.037849, -0.839622, -0.596764],
        [-0.266176, -0.090545, -0.131606, 0.868665, 0.865769, 1.063029, 0.9213, 0.73404],
    ],
    ("none", 1000): [
        [-0.318338, 0.337244, 1.115884, 0.429738, -0.333662, -1.323462, 0.028409, 0.851939],
        [0.229725, 0.186459, -0.913704, -0.522561, 0.279599, 1.361563, 0.043364, -1.02918],
        [0.23866, -0.148625, 0.67749, 0.55938, -0.216066, -1.353847, -0.114032, 1.172435],
    ],
    ("linear", 5): [
        [-0.351021, -0.303079, 0.490019, 1.090758, 0.976424, 0.953666, 0.731138, 0.438228],
        [-0.040548, 0.293081, -0.331424, -0.999041, -0.955323, -1.009648, -0.841409, -0.594242],
        [0.281024, -0.008578, 0.174236, 0.861127, 0.902437, 1.032083, 0.923863, 0.730811],
    ],
    ("linear", 1000): [
        [0.12361, -0.446982, 0.964038, 0.707462, 1.174452, -0.695373, 0.433373, 0.734027],
        [-0.282221, 0.088836, -0.780839, -0.705843, -1.223037, 0.660462, -0.455821, -0.923753],
        [0.12807, 0.250292, 0.57609, 0.663339, 1.230973, -0.603566, 0.463106, 1.083116],
    ],
    ("ntk", 5): [
        [0.462603, 0.032734, 0.418157, 1.120275, 0.981329, 0.948617, 0.731685, 0.437314],
        [-0.001217, -0.29587, -0.252594, -1.021822, -0.961553, -1.003716, -0.842299, -0.59298],
        [-0.266176, -0.090545, 0.095285, 0.873395, 0.909866, 1.02554, 0.925141, 0.729193],
    ],
    ("ntk", 1000): [
        [-0.318338, 0.337244, 0.58169, 1.044752, 0.006444, -1.364859, 0.601501, 0.603989],
        [0.229725, 0.186459, -0.403217, -0.972286, -0.059918, 1.388683, -0.670387, -0.782096],
        [0.23866, -0.148625, 0.225397, 0.849173, 0.111428, -1.366445, 0.717144, 0.934512],
    ],
}


@pytest.mark.parametrize("scaling,offset", list(ROTARY_EMBEDDING_TORCH))
def test_rope_equals_rotary_embedding_torch(scaling, offset):
    options = {"none": {}, "linear": {"scaling": "linear", "factor": 2.0}, "ntk": {"scaling": "ntk", "factor": 4.0}}
    y = rope(**options[scaling]).apply(X, torch.arange(offset, offset + 3))
    # the reference computes angles in float32; tokvec in float64, hence 1e-5 at position 1000
    torch.testing.assert_close(y, torch.tensor(ROTARY_EMBEDDING_TORCH[scaling, offset]), atol=1e-5, rtol=0)


def test_rope_halves_layout_is_the_same_rotation_on_permuted_dimensions():
    # halves pairs (i, i + hd/2); interleaved pairs (2i, 2i + 1): permute the columns between them
    perm = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])
    pos = torch.tensor([3, 50, 999])
    halves = rope(layout="halves").apply(X[:, perm], pos)
    torch.testing.assert_close(halves, rope().apply(X, pos)[:, perm])


def test_rope_base_sets_the_frequencies():
    torch.testing.assert_close(
        rope_frequencies(8, base=500.0)[0], torch.tensor([500.0 ** (-i / 8) for i in (0, 2, 4, 6)], dtype=torch.float64)
    )
    assert not torch.equal(rope(base=500.0).apply(X, torch.arange(3)), rope().apply(X, torch.arange(3)))


def test_rope_linear_scaling_is_position_interpolation():
    torch.testing.assert_close(
        rope(scaling="linear", factor=4.0).apply(X, torch.tensor([8, 40, 400])),
        rope().apply(X, torch.tensor([2, 10, 100])),
    )


def test_rope_ntk_keeps_the_fastest_frequency_and_interpolates_the_slowest():
    plain, ntk = rope_frequencies(8)[0], rope_frequencies(8, scaling="ntk", factor=4.0)[0]
    assert float(ntk[0]) == float(plain[0]) == 1.0
    assert float(ntk[-1]) == pytest.approx(
        float(plain[-1]) / 4.0, rel=1e-12
    )  # base * f^(hd/(hd-2)) makes the last one exact


def test_rope_yarn_equals_hugging_face():
    # transformers 5.23.0, ROPE_INIT_FUNCTIONS["yarn"] with LlamaConfig(hidden_size=64, num_attention_heads=2,
    # rope_parameters={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256,
    # "rope_theta": 10000.0}) -> (inv_freq, attention_factor)
    hf_inv_freq = [
        1.0,
        0.50209045,
        0.24846469,
        0.12066896,
        0.057142854,
        0.026108701,
        0.011293849,
        0.0044456986,
        0.0024999999,
        0.0014058533,
        0.00079056947,
        0.00044456986,
        0.00025000001,
        0.00014058533,
        7.9056947e-05,
        4.4456985e-05,
    ]
    inv_freq, mscale = rope_frequencies(32, scaling="yarn", factor=4.0, original_max_len=256)
    torch.testing.assert_close(inv_freq.float(), torch.tensor(hf_inv_freq), rtol=1e-6, atol=0)
    assert mscale == pytest.approx(1.138629436111989, abs=1e-12)  # 0.1 ln 4 + 1
    r = build("rope", head_dim=32, n_heads=1, scaling="yarn", factor=4.0, original_max_len=256)
    x = torch.randn(5, 32)
    torch.testing.assert_close(r.apply(x, torch.arange(5)).norm(dim=-1), x.norm(dim=-1) * mscale)


def test_rope_tables_grow_past_max_len():
    r = rope(max_len=4)
    torch.testing.assert_close(
        r.apply(X, torch.tensor([5, 1000, 3])), rope(max_len=2048).apply(X, torch.tensor([5, 1000, 3]))
    )
    assert r.max_len >= 1001


def test_rope_needs_an_even_head_dim(error_says):
    with error_says(TokvecValueError, "even head_dim", "11", "d_model 33", "n_heads 3"):
        build("rope", d_model=33, n_heads=3)


@pytest.mark.parametrize("factor", [0, -2.0, 0.0])
@pytest.mark.parametrize("scaling", ["linear", "ntk", "yarn"])
def test_rope_scaling_factor_must_be_positive(scaling, factor, error_says):
    with error_says(TokvecValueError, "factor", "> 0", f"got {factor!r}"):
        rope(scaling=scaling, factor=factor)


def test_rope_option_errors(error_says):
    with error_says(TokvecValueError, "factor 2.0", "scaling="):
        rope(factor=2.0)
    with error_says(TokvecValueError, "'dynamic'", "none, linear, ntk, yarn"):
        rope(scaling="dynamic")
    with error_says(TokvecValueError, "'pairs'", "interleaved, halves"):
        rope(layout="pairs")
    with error_says(TokvecValueError, "base", "> 1", "got 1"):
        rope(base=1)


def test_rope_refuses_negative_positions_and_wrong_head_size(error_says):
    with error_says(TokvecValueError, ">= 0", "-3"):
        rope().apply(X, torch.tensor([-3, 0, 1]))
    with error_says(TokvecValueError, "head_dim 8", "size 6"):
        rope().apply(torch.zeros(3, 6), torch.arange(3))


# -- ALiBi ----------------------------------------------------------------------------------------


def test_alibi_slopes_for_8_heads_are_powers_of_one_half():
    assert alibi_slopes(8) == [2.0**-i for i in range(1, 9)]


def test_alibi_slopes_for_12_heads_follow_the_paper_interpolation():
    # ofirpress/attention_with_linear_biases get_slopes(12): the 8-head slopes, then every other
    # slope of the 16-head sequence 2^-0.5, 2^-1, ..., i.e. 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
    expected = [
        0.5,
        0.25,
        0.125,
        0.0625,
        0.03125,
        0.015625,
        0.0078125,
        0.00390625,
        0.7071067811865476,
        0.35355339059327373,
        0.17677669529663687,
        0.08838834764831843,
    ]
    assert alibi_slopes(12) == pytest.approx(expected, rel=1e-15)


def test_alibi_bias_is_minus_slope_times_distance_and_memoised():
    alibi = build("alibi", n_heads=2)  # slopes 2^-4, 2^-8
    bias = alibi.score_bias(2, 5, offset=3)  # queries at 3, 4
    distance = torch.tensor([[3.0, 2, 1, 0, 1], [4, 3, 2, 1, 0]])
    torch.testing.assert_close(bias, torch.stack([-distance / 16, -distance / 256]))
    assert alibi.score_bias(2, 5, offset=3) is bias  # built once, shared by every layer
    assert alibi.score_bias(2, 5, offset=2) is not bias


# -- Shaw relative --------------------------------------------------------------------------------


def test_shaw_distances_beyond_k_share_the_clipped_embedding():
    shaw = build("relative", head_dim=4, n_heads=1, max_relative_position=3)
    idx = shaw.relative_index(1, 10, offset=9)[0]  # distances j - i = -9 .. 0
    assert idx.tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 2, 3]  # row d + k; -9 .. -3 all in row 0
    q, k = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 10, 4)
    term = shaw.score_term(q, k, offset=9)[0, 0, 0]
    assert torch.all(term[:7] == term[0])
    torch.testing.assert_close(term[7:], (q[0, 0, 0] @ shaw.key_table[1:4].T) / 2.0)


def test_shaw_max_relative_position_must_be_positive(error_says):
    with error_says(TokvecValueError, "max_relative_position", ">= 1", "got 0"):
        build("relative", d_model=8, n_heads=2, max_relative_position=0)


# -- T5 -------------------------------------------------------------------------------------------

# transformers 5.23.0 T5Attention._relative_position_bucket(relative_position, bidirectional=...,
# num_buckets=32, max_distance=128) (the Mesh TensorFlow formula); relative_position = key - query
T5_CASES = [
    -1000,
    -200,
    -128,
    -127,
    -100,
    -64,
    -50,
    -32,
    -20,
    -16,
    -15,
    -12,
    -9,
    -8,
    -7,
    -3,
    -1,
    0,
    1,
    3,
    7,
    8,
    9,
    12,
    15,
    16,
    20,
    32,
    50,
    64,
    100,
    127,
    128,
    200,
    1000,
]
T5_BIDIRECTIONAL = [
    15,
    15,
    15,
    15,
    15,
    14,
    13,
    12,
    10,
    10,
    9,
    9,
    8,
    8,
    7,
    3,
    1,
    0,
    17,
    19,
    23,
    24,
    24,
    25,
    25,
    26,
    26,
    28,
    29,
    30,
    31,
    31,
    31,
    31,
    31,
]
T5_CAUSAL = [
    31,
    31,
    31,
    31,
    30,
    26,
    24,
    21,
    17,
    16,
    15,
    12,
    9,
    8,
    7,
    3,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
]


@pytest.mark.parametrize("bidirectional,expected", [(True, T5_BIDIRECTIONAL), (False, T5_CAUSAL)])
def test_t5_buckets_equal_the_published_bucketing(bidirectional, expected):
    got = t5_bucket(torch.tensor(T5_CASES), bidirectional=bidirectional, num_buckets=32, max_distance=128)
    assert dict(zip(T5_CASES, got.tolist())) == dict(zip(T5_CASES, expected))


def test_t5_bias_looks_up_the_bucket_of_each_pair():
    t5 = build("t5", n_heads=3)
    bias = t5.score_bias(4, 300, offset=296)  # (h, q, k)
    ids = t5_bucket(torch.arange(300).unsqueeze(0) - torch.arange(296, 300).unsqueeze(1), bidirectional=False)
    torch.testing.assert_close(bias, t5.weight[ids].permute(2, 0, 1))


def test_t5_bias_is_kept_without_grad_and_refreshed_when_the_weights_change():
    t5 = build("t5", n_heads=2)
    with torch.no_grad():
        first = t5.score_bias(3, 3)
        assert t5.score_bias(3, 3) is first
        t5.weight.add_(1.0)
        second = t5.score_bias(3, 3)
    torch.testing.assert_close(second, first + 1.0)
    bias = t5.score_bias(3, 3)  # with grad: in the graph, never memoised
    assert bias.requires_grad and bias is not t5.score_bias(3, 3)


def test_t5_bucket_options_are_checked(error_says):
    with error_says(TokvecValueError, "max_distance (4)", "> 8"):
        build("t5", n_heads=2, num_buckets=16, max_distance=4)


# -- Transformer-XL -------------------------------------------------------------------------------


def test_xl_score_term_equals_the_four_term_formula_written_as_a_loop():
    torch.manual_seed(0)
    h, hd, d = 2, 4, 8
    xl = build("xl", d_model=d, n_heads=h)
    with torch.no_grad():
        xl.u.normal_()
        xl.v.normal_()
    q, k = torch.randn(1, h, 3, hd), torch.randn(1, h, 7, hd)
    offset = 4
    term = xl.score_term(q, k, offset)
    w_r = xl.r_proj.weight.view(h, hd, d)
    expected = torch.empty(1, h, 3, 7)
    for head in range(h):
        for i in range(3):
            for j in range(7):
                dist = offset + i - j
                # R_{i-j}: sines then cosines of dist * 10000^(-2m/d) (Dai et al. code, pos_emb)
                freqs = [10000.0 ** (-2 * m / d) for m in range(d // 2)]
                r = torch.tensor([math.sin(dist * f) for f in freqs] + [math.cos(dist * f) for f in freqs])
                wr = w_r[head] @ r
                b_d = (q[0, head, i] + xl.v[head]) @ wr  # (b) + (d)
                c = xl.u[head] @ k[0, head, j]  # (c)
                expected[0, head, i, j] = (b_d + c) / math.sqrt(hd)
    torch.testing.assert_close(term, expected, atol=1e-5, rtol=1e-5)


def test_xl_relative_table_matches_the_sinusoid_formula():
    xl = build("xl", d_model=6, n_heads=2)
    torch.testing.assert_close(xl.sinusoids(2, 3, offset=5), sinusoidal_table(4, 6, layout="halves", offset=3))


def test_scheme_classes_are_exported():
    assert isinstance(build("alibi", n_heads=2), ALiBiPositionalEncoding)
    assert isinstance(build("t5", n_heads=2), T5RelativePositionalEncoding)
    assert isinstance(build("relative", d_model=8, n_heads=2), ShawRelativePositionalEncoding)
    assert isinstance(build("xl", d_model=8, n_heads=2), TransformerXLPositionalEncoding)


# -- length-extrapolation harness -----------------------------------------------------------------


@pytest.mark.slow
def test_compare_trains_each_scheme_and_scores_every_length(tmp_path):
    from tokvec.runs.experiments import CompareConfig, compare, format_table, plot, write_csv

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60, encoding="utf-8")
    config = CompareConfig(
        corpus=str(corpus),
        train_len=8,
        eval_lens=(8, 16),
        schemes=("learned", "alibi"),
        d_model=16,
        n_layers=1,
        n_heads=2,
        max_steps=3,
        batch_size=4,
        eval_tokens=64,
        threads=1,
    )
    rows = compare(config)
    assert [(r.scheme, r.eval_len) for r in rows] == [("learned", 8), ("learned", 16), ("alibi", 8), ("alibi", 16)]
    learned_16 = rows[1]
    assert math.isnan(learned_16.loss) and "16 tokens is longer than context_length 8" in learned_16.note
    assert all(
        math.isfinite(r.loss) and r.perplexity == pytest.approx(math.exp(r.loss)) for r in rows if r is not learned_16
    )
    table = format_table(rows)
    assert table.splitlines()[0] == "| scheme | ppl @ 8 | ppl @ 16 |"
    assert table.splitlines()[2].startswith("| learned | ") and table.splitlines()[2].endswith(" | n/a |")
    lines = write_csv(rows, tmp_path / "c.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "scheme,eval_len,loss,perplexity,note" and lines[2].startswith(
        "learned,16,nan,nan,sequence of 16 tokens"
    )
    assert plot(rows, tmp_path / "c.png", train_len=8).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_bad_input(error_says):
    from tokvec.runs.experiments import CompareConfig, parse_lengths, parse_schemes

    assert parse_schemes("all") == tuple(available())
    assert parse_schemes("rope, alibi") == ("rope", "alibi")
    with error_says(TokvecValueError, "['rotary']", "known schemes: sinusoidal"):
        parse_schemes("rope,rotary")
    with error_says(TokvecValueError, "'x'", "'128,x'", "integer"):
        parse_lengths("128,x")
    with error_says(TokvecValueError, "eval length 0", ">= 1"):
        parse_lengths("0")
    with error_says(
        TokvecValueError, re.compile(r"train_len .*\[1, \d+\], got 0"), re.compile(r"max_steps .*\[1, \d+\], got -1")
    ):
        CompareConfig(train_len=0, max_steps=-1).validate()


def test_cli_compare_refuses_an_unknown_scheme_in_one_line(cli):
    code, _, err = cli("positional", "compare", "--schemes", "rope,rotary", "--max-steps", "1")
    assert code == 2
    assert err.startswith("tokvec: error: unknown positional scheme(s) ['rotary']") and err.count("\n") == 1


# -- distance_scores: the fused path's view of T5 and Shaw ---------------------------------------


@pytest.mark.parametrize(
    "name,options",
    [
        ("t5", {}),
        ("t5", {"bidirectional": True}),
        ("t5", {"num_buckets": 8, "max_distance": 20}),
        ("relative", {"max_relative_position": 3}),
    ],
)
def test_distance_scores_equal_the_score_bias_and_term_at_every_distance(name, options):
    """Column min(d, W) of distance_scores must be what score_bias / score_term give a key at distance d,
    for every distance up to 300 (far past W), and at an offset (a KV cache)."""
    torch.manual_seed(0)
    scheme = build(name, d_model=16, n_heads=2, **options)
    q, k = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 300, 8)
    offset = 295  # queries at 295 .. 299, keys 0 .. 299
    with torch.no_grad():
        table = scheme.distance_scores(q).expand(1, 2, 5, -1)  # (1, h, s, W + 1)
        w = table.shape[-1] - 1
        full = scheme.score_bias(5, 300, offset) if name == "t5" else scheme.score_term(q, k, offset)[0]
        full = full.expand(1, 2, 5, 300)
        dist = (torch.arange(offset, offset + 5).unsqueeze(1) - torch.arange(300)).clamp(min=0)  # (5, 300)
        got = table.gather(-1, dist.clamp(max=w).expand(1, 2, 5, 300))
    past = (torch.arange(300) <= torch.arange(offset, offset + 5).unsqueeze(1)).expand(1, 2, 5, 300)
    torch.testing.assert_close(got[past], full[past])
    assert w < 300 and (w <= 113 if name == "t5" else w == 3)
