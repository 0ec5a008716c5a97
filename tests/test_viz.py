"""Plots, trace, neighbours and the HTML report (tokvec.viz)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import shutil
import subprocess
import types
import warnings

import numpy as np
import pytest
import torch

from tokvec import BPETokenizer, CharTokenizer, InputEmbedding
from tokvec.errors import FormatError, TokvecValueError, UnknownTokenError
from tokvec.positional import build, sinusoidal_table
from tokvec.runs.rundir import RunData, check_run_dir
from tokvec.viz import (
    Neighbor,
    display_token,
    find_cjk_font,
    neighbors,
    pca_2d,
    plot_attention,
    plot_embeddings,
    plot_loss,
    plot_pe,
    plot_pe_similarity,
    positional_scores,
    read_metrics,
    save_figure,
    token_strings,
    trace,
)
from tokvec.viz import fonts as fonts_module
from tokvec.viz.analysis import attention_maps
from tokvec.viz.fonts import FontInfo
from tokvec.viz.report import build_report, tokenizer_stats, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CJK_FONT = find_cjk_font()
needs_cjk_font = pytest.mark.skipif(not CJK_FONT.found, reason="no CJK font installed (apt-get install fonts-noto-cjk)")


def tiny_gpt(vocab_size, *, positional="sinusoidal", n_layers=2, n_heads=2, d_model=16, context_length=32):
    from tokvec.model.config import ModelConfig
    from tokvec.model.gpt import GPT

    torch.manual_seed(0)
    return GPT(
        ModelConfig(
            vocab_size=vocab_size,
            context_length=context_length,
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            positional=positional,
        )
    ).eval()


@pytest.fixture
def tok():
    return CharTokenizer.train(["你好好嗎嗎 小沈阳江西演唱会邀请了, hello world"])


def no_glyph_warnings(fig, fmt="png"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(io.BytesIO(), format=fmt)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


@pytest.mark.slow
# -- fonts ----------------------------------------------------------------------------------------------
@needs_cjk_font
def test_cjk_font_found_covers_chinese_and_labels_draw_without_missing_glyphs():
    from matplotlib.ft2font import FT2Font

    charmap = FT2Font(CJK_FONT.path).get_charmap()
    assert all(ord(c) in charmap for c in "你好嗎王沈阳")
    fig = plot_embeddings(torch.randn(6, 4), ["你", "好", "嗎", "王", "a", " "])
    assert fig.tokvec_info["font"] == CJK_FONT.name and fig.tokvec_info["needs_cjk"]
    assert no_glyph_warnings(fig) == []
    assert "CJK font: " + CJK_FONT.name in fig.tokvec_info["font_note"]


def test_font_search_skips_a_cjk_named_font_without_the_glyphs():
    from matplotlib import font_manager

    dejavu = font_manager.findfont("DejaVu Sans")
    entry = types.SimpleNamespace(name="Fake CJK Sans", fname=dejavu, style="normal", weight=400)
    assert fonts_module._search([entry]) == FontInfo(None, None)
    if CJK_FONT.found:
        real = types.SimpleNamespace(name=CJK_FONT.name, fname=CJK_FONT.path, style="normal", weight=400)
        assert fonts_module._search([entry, real]) == CJK_FONT


@needs_cjk_font
def test_a_font_installed_after_matplotlib_cached_its_list_is_found(monkeypatch):
    from matplotlib import font_manager

    stale = [f for f in font_manager.fontManager.ttflist if "CJK" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    assert fonts_module._search(stale) == FontInfo(None, None)
    assert fonts_module.find_cjk_font.__wrapped__() == CJK_FONT  # rescanned the font directories


def test_without_a_cjk_font_the_figure_says_so_instead_of_silent_boxes(monkeypatch):
    monkeypatch.setattr(fonts_module, "find_cjk_font", lambda: FontInfo(None, None))
    fig = plot_embeddings(torch.randn(3, 4), ["王", "好", "a"])
    info = fig.tokvec_info
    assert info["font"] is None and info["needs_cjk"]
    assert info["font_note"].startswith("no CJK font found") and "fonts-noto-cjk" in info["font_note"]
    assert any(t.get_text().startswith("⚠ no CJK font found") for t in fig.texts)
    # Latin-only labels need no CJK font: no footnote
    fig = plot_embeddings(torch.randn(3, 4), ["a", "b", "c"])
    assert fig.texts == [] and not fig.tokvec_info["needs_cjk"]


def test_display_token_makes_whitespace_visible():
    assert display_token(" ") == "␣" and display_token("\n") == "↵" and display_token("a\x01") == "a\\x01"
    assert display_token("x" * 20, 6) == "xxxxx…"


# -- positional encodings --------------------------------------------------------------------------------
def test_plot_pe_image_is_the_sinusoid_table():
    fig = plot_pe(d_model=128, max_len=200)
    ax = fig.axes[0]
    image = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(image, sinusoidal_table(200, 128).numpy())
    assert ax.get_xlabel() == "dimension i of d_model" and ax.get_ylabel() == "position"
    assert "(200, 128)" in ax.get_title()
    # Vaswani et al. 3.5: PE[1, 0] = sin(1), PE[1, 1] = cos(1)
    assert image[1, 0] == pytest.approx(math.sin(1)) and image[1, 1] == pytest.approx(math.cos(1))


def test_plot_pe_of_a_learned_table_and_refusal_for_attention_schemes(error_says):
    torch.manual_seed(0)
    learned = build("learned", d_model=8, max_len=10)
    fig = plot_pe(learned, max_len=10)
    np.testing.assert_array_equal(np.asarray(fig.axes[0].images[0].get_array()), learned.weight.detach().numpy())
    with error_says(TokvecValueError, "'none'", "plot_pe_similarity"):
        plot_pe("none")
    with error_says(TokvecValueError, "'rope'", "'attention'", "no table"):
        plot_pe("rope", d_model=16)


def test_sinusoidal_similarity_is_sum_of_cosines_of_the_distance():
    # Vaswani et al.: PE(p)·PE(p+k) = sum_i cos(w_i k); d_model = 4 gives w = (1, 1/100)
    result = positional_scores("sinusoidal", n_positions=12, d_model=4, n_heads=1)
    assert result.method == "dot" and result.scores.shape == (1, 12, 12)
    i, j = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    np.testing.assert_allclose(result.scores[0], np.cos(i - j) + np.cos((i - j) / 100), atol=1e-6)
    fig = plot_pe_similarity("sinusoidal", n_positions=12, d_model=4, n_heads=1)
    left, right = fig.axes[0], fig.axes[1]  # axes[2] is the colorbar
    np.testing.assert_allclose(np.asarray(left.images[0].get_array()), result.scores[0])
    x, y = right.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(12))
    np.testing.assert_allclose(y, np.cos(x) + np.cos(x / 100), atol=1e-6)
    assert right.get_xlabel().startswith("distance i − j")


def test_rope_similarity_is_the_roformer_decay_and_depends_only_on_distance():
    hd = 8
    result = positional_scores("rope", n_positions=10, d_model=16, n_heads=2)
    assert result.method == "rotary" and result.label == "q_i·k_j/√hd" and result.scores.shape == (1, 10, 10)
    theta = 10000.0 ** (-np.arange(0, hd, 2) / hd)  # Su et al. 2021, eq. 15
    for i in range(10):
        for j in range(10):
            if j > i:
                assert np.isnan(result.scores[0, i, j])  # causal: never looked at
            else:  # all-ones vector: q_m·k_n = sum over pairs of 2 cos((m-n) theta)
                assert result.scores[0, i, j] == pytest.approx(
                    2 * np.cos((i - j) * theta).sum() / math.sqrt(hd), abs=1e-5
                )


def test_alibi_similarity_keeps_each_heads_slope():
    result = positional_scores("alibi", n_positions=6, d_model=16, n_heads=4)
    assert result.method == "bias" and result.scores.shape == (4, 6, 6)
    slopes = 2.0 ** (-8 / 4 * np.arange(1, 5))  # Press et al. 2022: 2^-2, 2^-4, 2^-6, 2^-8 for 4 heads
    distances, profile = result.by_distance()
    np.testing.assert_allclose(profile, -slopes[:, None] * distances[None, :], atol=1e-6)
    fig = plot_pe_similarity("alibi", n_positions=6, d_model=16, n_heads=4)
    assert [line.get_label() for line in fig.axes[1].lines] == ["head 0", "head 1", "head 2", "head 3"]
    assert fig.axes[0].get_title() == "alibi: bias(i,j) (head 0)"


@pytest.mark.parametrize("name", ["rope", "alibi", "relative", "t5", "xl"])
def test_similarity_from_the_hooks_equals_what_the_attention_layer_does(name):
    # the same constant input through a real CausalSelfAttention: log w(i,j) - log w(i,i) must equal
    # score(i,j) - score(i,i) computed from the scheme's hooks (rotate, score_bias, score_term)
    torch.manual_seed(0)
    scheme = build(name, d_model=16, n_heads=2, head_dim=8, max_len=12)
    with torch.no_grad():  # learned parts start at zero in some schemes: make them matter
        for p in scheme.parameters():
            p.normal_(0, 0.5)
    direct = positional_scores(scheme, n_positions=12, d_model=16, n_heads=2)
    measured = positional_scores(scheme, n_positions=12, d_model=16, n_heads=2, method="attention")
    assert direct.method != "attention" and measured.method == "attention"
    d = np.broadcast_to(direct.scores, (2, 12, 12))
    expected = d - np.diagonal(d, axis1=1, axis2=2)[:, :, None]
    np.testing.assert_allclose(np.broadcast_to(measured.scores, (2, 12, 12)), expected, atol=1e-4)


def test_every_registered_scheme_has_a_similarity_plot():
    from tokvec.positional import available

    for name in available():
        fig = plot_pe_similarity(name, n_positions=8, d_model=16, n_heads=2)
        assert fig.tokvec_info["scheme"] == name and np.isfinite(np.nanmax(fig.tokvec_info["scores"]))


def test_similarity_of_nope_and_bad_arguments(error_says):
    result = positional_scores("none", n_positions=4, d_model=8, n_heads=2)
    assert result.method == "none" and np.nansum(np.abs(result.scores)) == 0
    with error_says(TokvecValueError, "'fast'", "auto, attention"):
        positional_scores("sinusoidal", method="fast")
    with error_says(TokvecValueError, "n_positions", "[2, 8192]", "got 1"):
        positional_scores("sinusoidal", n_positions=1)
    with error_says(TokvecValueError, "'sinusoidal'", "'input'", "method 'auto'"):
        positional_scores("sinusoidal", method="attention")
    with error_says(TokvecValueError, "'rotary'", "known schemes: sinusoidal"):
        positional_scores("rotary")


# -- embeddings, neighbours --------------------------------------------------------------------------------
def test_pca_matches_the_covariance_eigenvectors(error_says):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) * np.array([5, 3, 1, 0.5, 0.2, 0.1])
    coords, explained = pca_2d(x)
    centered = x - x.mean(0)
    values, vectors = np.linalg.eigh(np.cov(centered.T))
    top = vectors[:, ::-1][:, :2].T  # (2, d), largest first
    top *= np.sign(top[np.arange(2), np.abs(top).argmax(1)])[:, None]
    np.testing.assert_allclose(coords, centered @ top.T, atol=1e-9)
    np.testing.assert_allclose(explained, values[::-1][:2] / values.sum(), atol=1e-12)
    with error_says(TokvecValueError, "(n, d)", "n >= 2"):
        pca_2d(np.zeros((1, 4)))


def test_plot_embeddings_points_labels_and_axes(error_says):
    torch.manual_seed(0)
    table = torch.randn(7, 5)
    tokens = ["<pad>", "你", "好", "嗎", " ", "\n", "hello"]
    fig = plot_embeddings(table, tokens, ids=[1, 2, 3, 4, 5, 6])
    ax = fig.axes[0]
    coords, explained = pca_2d(table[1:])
    np.testing.assert_allclose(ax.collections[0].get_offsets(), coords)
    assert [t.get_text() for t in ax.texts] == ["你", "好", "嗎", "␣", "↵", "hello"]
    assert ax.get_xlabel() == f"PC1 ({100 * explained[0]:.1f}% of variance)"
    with error_says(TokvecValueError, "token id 9", "vocab_size 7"):
        plot_embeddings(table, tokens, ids=[1, 9])
    with error_says(TokvecValueError, "one row per token", "(7, 5)", "3 tokens"):
        plot_embeddings(table, tokens[:3])


def test_neighbors_by_cosine():
    tokens = ["王", "后", "猫", "狗"]
    table = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    found = neighbors(table, tokens, "王", k=3)
    assert [(n.token, n.id) for n in found] == [("后", 1), ("猫", 2), ("狗", 3)]
    assert [n.similarity for n in found] == pytest.approx([0.8, 0.0, -1.0])
    assert neighbors(table, tokens, 2, k=1)[0].token == "后"  # by id: cos(猫, 后) = 0.6


def test_neighbors_unknown_token_says_so_and_suggests(error_says):
    tokens = ["hello", "help", "world", "王", "者"]
    table = torch.randn(5, 3)
    with error_says(UnknownTokenError, "'helo'", "5 tokens", "'hello', 'help'"):
        neighbors(table, tokens, "helo")
    with error_says(UnknownTokenError, "'王者'", "2 tokens", "('王', '者')"):
        neighbors(table, tokens, "王者")
    with error_says(UnknownTokenError, "'猫'", "no close spelling"):
        neighbors(table, tokens, "猫")
    with error_says(TokvecValueError, "token id 5", "vocab_size 5"):
        neighbors(table, tokens, 5)


def test_token_strings_of_a_char_tokenizer(tok):
    strings = token_strings(tok)
    assert strings[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and len(strings) == tok.vocab_size
    assert strings[tok.encode("王")[0]] == "<unk>" and strings[tok.encode("好")[0]] == "好"


def test_token_strings_of_a_bpe_vocabulary_with_unassigned_ids():
    # ids 257..299 are no token (as the unused ids of an imported HF vocabulary): their rows still exist
    ranks = {**{bytes([b]): b for b in range(256)}, b"ab": 300, "好".encode(): 301}
    bpe = BPETokenizer(ranks, special_tokens={"<|endoftext|>": 256})
    strings = token_strings(bpe)
    assert len(strings) == bpe.vocab_size == 302
    assert strings[97] == "a" and strings[0xE5] == "\\xe5" and strings[256] == "<|endoftext|>"
    assert strings[257:300] == [""] * 43 and strings[300:] == ["ab", "好"]
    table = torch.randn(302, 8, generator=torch.Generator().manual_seed(0))  # the model's table: a row per id
    table[5] = table[300]  # "ab" is found at id 300, and its twin row is its nearest neighbour
    assert neighbors(table, strings, "ab", k=1)[0] == Neighbor("\x05", 5, pytest.approx(1.0))


# -- loss -------------------------------------------------------------------------------------------------
def write_metrics(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


RECORDS = [
    {"step": s, "split": "train", "loss": 4.0 - s / 10, "lr": 1e-3, "tokens_per_s": 1000.0, "elapsed_s": s}
    for s in range(0, 21, 2)
] + [
    {"step": s, "split": "val", "loss": 4.2 - s / 12, "lr": 1e-3, "tokens_per_s": 0.0, "elapsed_s": s}
    for s in (0, 10, 20)
]


def test_plot_loss_draws_train_and_val_from_metrics_jsonl(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", RECORDS, tail='{"step": 22, "spl')  # crash mid-line
    fig = plot_loss(path)
    ax = fig.axes[0]
    train, val = ax.lines
    np.testing.assert_array_equal(train.get_xdata(), range(0, 21, 2))
    np.testing.assert_allclose(train.get_ydata(), [4.0 - s / 10 for s in range(0, 21, 2)])
    np.testing.assert_allclose(val.get_ydata(), [4.2, 4.2 - 10 / 12, 4.2 - 20 / 12])
    assert train.get_label() == "train (last 2.000 at step 20)" and ax.get_xlabel() == "step"
    assert fig.tokvec_info["final"]["val"]["step"] == 20
    assert plot_loss(tmp_path).axes[0].lines[0].get_xdata()[-1] == 20  # a run dir works too


def test_read_metrics_errors(tmp_path, error_says):
    with error_says(FileNotFoundError, "no metrics file", "nowhere.jsonl"):
        read_metrics(tmp_path / "nowhere.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 0, "split": "train", "loss": 1.0}\nnot json\n', encoding="utf-8")
    with error_says(FormatError, "bad.jsonl", "line 2", "JSON", "'not json'"):
        read_metrics(bad)
    bad.write_text('{"step": 0, "loss": 1.0}\n', encoding="utf-8")
    with error_says(FormatError, "line 1", "'split'", "missing"):
        read_metrics(bad)
    bad.write_text("\n", encoding="utf-8")
    with pytest.raises(FormatError, match="holds no loss records yet"):
        read_metrics(bad)


# -- trace ------------------------------------------------------------------------------------------------
def test_trace_records_each_stage_with_its_shape(tok):
    torch.manual_seed(0)
    emb = InputEmbedding(tok.vocab_size, 16, positional="sinusoidal", dropout=0.1)
    result = trace("你好好嗎嗎", tok, emb)
    assert [(s.name, s.shape) for s in result.stages] == [
        ("text", (5,)),
        ("pieces", (5,)),
        ("ids", (1, 5)),
        ("token vectors", (1, 5, 16)),
        ("position vectors", (5, 16)),
        ("input vectors", (1, 5, 16)),
    ]
    assert result.pieces == ["你", "好", "好", "嗎", "嗎"] and result.ids == tok.encode("你好好嗎嗎")
    tv, pe, x = (result.stage(n).value for n in ("token vectors", "position vectors", "input vectors"))
    torch.testing.assert_close(tv[0], emb.token.weight[result.ids].detach())
    torch.testing.assert_close(pe, sinusoidal_table(5, 16))
    torch.testing.assert_close(x, tv + pe)  # eval mode: no dropout
    assert emb.training  # left as it was


def test_trace_with_an_attention_level_scheme_and_bad_text(tok):
    emb = InputEmbedding(tok.vocab_size, 8, positional="none")
    result = trace("你好", tok, emb)
    assert "position vectors" not in [s.name for s in result.stages]
    assert "none acts nowhere" in result.stages[-1].note
    with pytest.raises(TokvecValueError, match="text is empty"):
        trace("", tok, emb)


# -- attention ------------------------------------------------------------------------------------------
def test_attention_maps_come_from_the_model_and_plot_per_head(tok):
    torch.manual_seed(0)
    model = tiny_gpt(tok.vocab_size)
    weights, pieces = attention_maps(model, tok, "你好好嗎嗎", layer=1)
    assert weights.shape == (2, 5, 5) and pieces == ["你", "好", "好", "嗎", "嗎"]
    ids = torch.tensor([tok.encode("你好好嗎嗎")])
    with torch.no_grad():
        expected = model.attention_weights(ids)[1][0]
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5))
    assert torch.all(weights.triu(1) == 0)  # causal
    fig = plot_attention(weights, pieces, layer=1)
    heads = [ax for ax in fig.axes if ax.images and ax.get_title().startswith("head")]
    assert [ax.get_title() for ax in heads] == ["head 0", "head 1"]
    np.testing.assert_allclose(np.asarray(heads[1].images[0].get_array()), weights[1].numpy())
    assert [t.get_text() for t in heads[0].get_xticklabels()] == pieces
    assert fig._suptitle.get_text() == "layer 1: 2 heads × (query × key), 5 tokens"


@pytest.mark.parametrize(
    "positional", ["sinusoidal", "learned", "rope", "alibi", "relative", "t5", "xl", "cape", "none"]
)
def test_a_models_scheme_is_measured_on_its_own_device(tok, positional):
    # Under a meta default device every tensor made without naming a device lands on meta (no data): a
    # device mix-up fails here on a CPU-only machine as it would with the model on a GPU (ids or scores
    # built on the CPU against a CUDA scheme: "expected all tensors to be on the same device").
    model = tiny_gpt(tok.vocab_size, positional=positional)
    scheme = model.embed.positional
    methods = ["auto", "attention"] if scheme.acts_on == "attention" else ["auto"]
    expected = [positional_scores(scheme, n_positions=6, d_model=16, n_heads=2, method=m).scores for m in methods]
    want_trace = trace("你好好", tok, model.embed).stage("input vectors").value
    want_maps = attention_maps(model, tok, "你好好", layer=1)[0]
    with torch.device("meta"):
        got = [positional_scores(scheme, n_positions=6, d_model=16, n_heads=2, method=m).scores for m in methods]
        got_trace = trace("你好好", tok, model.embed).stage("input vectors").value
        got_maps = attention_maps(model, tok, "你好好", layer=1)[0]
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(want, have)
    torch.testing.assert_close(got_trace, want_trace, rtol=0, atol=0)
    torch.testing.assert_close(got_maps, want_maps, rtol=0, atol=0)


def test_attention_layer_out_of_range_names_the_number_of_layers(tok, error_says):
    model = tiny_gpt(tok.vocab_size, n_layers=2)
    with error_says(TokvecValueError, "layer 2", "2 layers", "0..1"):
        attention_maps(model, tok, "你好", layer=2)
    with pytest.raises(TokvecValueError, match="layer -1 is out of range"):
        attention_maps(model, tok, "你好", layer=-1)
    with error_says(TokvecValueError, "40 tokens", "context_length 32"):
        attention_maps(model, tok, "好" * 40, layer=0)


# -- files ----------------------------------------------------------------------------------------------
def test_save_figure_png_svg_and_bad_extension(tmp_path, error_says):
    fig = plot_pe(d_model=32, max_len=50)
    png = save_figure(fig, tmp_path / "pe.png")
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (960, 600)  # 8 x 5 inches at 120 dpi
        assert np.asarray(im.convert("L")).std() > 20  # not a blank image
    svg = save_figure(fig, tmp_path / "pe.svg").read_text(encoding="utf-8")
    assert svg.startswith("<?xml") and "<svg" in svg
    with error_says(TokvecValueError, "'.jpg'", ".png or .svg"):
        save_figure(fig, tmp_path / "pe.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pe.png", "pe.svg"]  # no temp files left


# -- report -----------------------------------------------------------------------------------------------
def fake_run(tok, tmp_path, positional="sinusoidal"):
    model = tiny_gpt(tok.vocab_size, positional=positional)
    config = {
        "format": "tokvec.run",
        "version": 1,
        "model": {
            "vocab_size": tok.vocab_size,
            "d_model": 16,
            "n_layers": 2,
            "n_heads": 2,
            "context_length": 32,
            "positional": positional,
        },
        "train": {"lr": 0.001, "batch_size": 4},
        "tokenizer": {"kind": "char"},
        "step": 20,
    }
    return RunData(model=model, tokenizer=tok, config=config, metrics=RECORDS, path=tmp_path)


@pytest.mark.slow
def test_report_holds_config_counts_stats_losses_sample_and_inline_plots(tok, tmp_path):
    run = fake_run(tok, tmp_path)
    val = "你好好嗎嗎 hello"
    page = build_report(run, val_text=val, prompt="你好", max_new_tokens=5)
    n_params = sum(p.numel() for p in run.model.parameters())
    assert "<td>model.d_model</td><td class=num>16</td>" in page
    assert f"<td>parameters</td><td class=num>{n_params}</td>" in page and n_params < 10_000  # no separator
    assert f"<td>tokens per character</td><td class=num>{round(len(tok.encode(val)) / len(val), 4):.4g}</td>" in page
    assert "<td>train</td><td class=num>20</td><td class=num>2</td>" in page  # final train loss 2.0 at step 20
    new = run.model.generate(torch.tensor([tok.encode("你好")]), 5, seed=0, eos_id=tok.eos_id)[0, 2:].tolist()
    sample = "你好" + tok.decode(new[: new.index(tok.eos_id)] if tok.eos_id in new else new)
    assert f"<pre>{html.escape(sample)}</pre>" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 6  # loss, embeddings, PE, PE similarity, attention layers 0 and 1
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    assert "not available" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # self-contained: nothing fetched
    assert tokenizer_stats(tok, val)["tokens_per_char"] == len(tok.encode(val)) / len(val)


def test_report_notes_missing_parts_instead_of_failing(tok, tmp_path):
    run = fake_run(tok, tmp_path, positional="none")
    run.metrics = None
    page = build_report(run, sample="given sample")
    assert page.count("not available: the run has no metrics.jsonl yet") == 2  # losses and curves
    assert (
        "tokens per character not measured: not available: the run&#x27;s config.json records no validation split"
    ) in page
    assert "not available: no text to read" in page and "<pre>given sample</pre>" in page
    assert "what none alone adds to the attention score" in page


def test_check_run_dir_errors(tmp_path, error_says):
    with error_says(FileNotFoundError, "no run directory", str(tmp_path / "missing"), "tokvec train"):
        check_run_dir(tmp_path / "missing")
    with error_says(FormatError, "no checkpoint", "config.json", "tokvec train"):
        check_run_dir(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other"}', encoding="utf-8")
    with error_says(FormatError, "'other'", "'tokvec.run'"):
        check_run_dir(tmp_path)
    (tmp_path / "config.json").write_text("[]", encoding="utf-8")
    with error_says(FormatError, "JSON object", "a list"):
        check_run_dir(tmp_path)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tok, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; `make test` installs it as root)")
    page = write_report(
        build_report(fake_run(tok, tmp_path), val_text="你好", prompt="你好", max_new_tokens=3),
        tmp_path / "report.html",
    )
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.std() > 10, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.005  # some dark ink: text and plots drew


# -- command line ------------------------------------------------------------------------------------------
def test_cli_trace_prints_every_stage(cli):
    r = cli("trace", "你好好嗎嗎", "--d-model", "8")
    assert r.code == 0
    printed = r.out
    for line in (
        "1. text  shape (5,)",
        "3. ids  shape (1, 5)",
        "4. token vectors  shape (1, 5, 8)",
        "5. position vectors  shape (5, 8)",
        "6. input vectors  shape (1, 5, 8)",
        "[[6, 4, 4, 5, 5]]",
    ):  # 好, 嗎 twice: most frequent, lowest ids
        assert line in printed


def test_cli_plots_write_files_and_name_the_font(tmp_path, cli):
    r = cli("plot", "pe", "--d-model", "16", "--max-len", "20", "--out", str(tmp_path / "pe.png"))
    assert r.code == 0
    printed = r.out
    assert (tmp_path / "pe.png").read_bytes().startswith(PNG_MAGIC)
    r = cli("plot", "pe-similarity", "--positional", "sinusoidal", "--out", str(tmp_path / "s.svg"))
    assert r.code == 0
    printed += r.out
    assert "<svg" in (tmp_path / "s.svg").read_text(encoding="utf-8")
    metrics = write_metrics(tmp_path / "metrics.jsonl", RECORDS)
    r = cli("plot", "loss", "--metrics", str(metrics), "--out", str(tmp_path / "loss.png"))
    assert r.code == 0
    printed += r.out
    assert printed.count("wrote ") == 3
    assert printed.count(CJK_FONT.describe()) == 3


def test_cli_errors_are_one_line(tmp_path, cli):
    r = cli("plot", "pe", "--out", str(tmp_path / "pe.jpg"))
    assert r.code == 2
    assert r.err.strip() == (
        f"tokvec: error: cannot save a figure as '.jpg' ({tmp_path / 'pe.jpg'}); name it .png or .svg"
    )
    r = cli("report", "--run", str(tmp_path / "nope"))
    assert r.code == 2
    err = r.err
    assert err.startswith("tokvec: error: no run directory at ") and err.count("\n") == 1
    r = cli("neighbors", "王")
    assert r.code == 2
    assert "neighbors needs a trained run: pass --run DIR" in r.err
    r = cli("plot", "loss")
    assert r.code == 2
    assert "plot loss needs --run DIR or --metrics FILE" in r.err


# -- a real run, trained here -------------------------------------------------------------------------------
POEM = "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from tokvec.runs import train

    root = tmp_path_factory.mktemp("trained")
    corpus = root / "poem.txt"
    corpus.write_text(POEM * 40, encoding="utf-8")
    config = train.TrainConfig(
        corpus=str(corpus),
        tokenizer="char",
        d_model=16,
        n_layers=2,
        n_heads=2,
        context_length=16,
        max_steps=40,
        eval_interval=20,
        eval_batches=2,
        batch_size=8,
        seed=0,
        out=str(root / "run"),
    )
    train.train(config)
    return root / "run"


@pytest.mark.slow
def test_open_run_loads_the_trained_model(trained_run):
    from tokvec.viz.report import open_run

    run = open_run(trained_run)
    assert run.model.config.n_layers == 2 and not run.model.training
    val = [r for r in run.metrics if r["split"] == "val"]
    assert [r["step"] for r in val][-1] == 40 and val[-1]["loss"] < val[0]["loss"]  # it learned something
    weights, pieces = attention_maps(run.model, run.tokenizer, "床前明月光", layer=1)
    assert weights.shape == (2, 5, 5) and pieces == list("床前明月光")


@pytest.mark.slow
def test_cli_run_commands_on_a_trained_run(trained_run, tmp_path, cli):
    run = str(trained_run)
    printed = ""
    for args, name in (
        (["plot", "embeddings", "--top", "30"], "emb.png"),
        (["plot", "attention", "--text", "床前明月光", "--layer", "1"], "att.png"),
        (["plot", "loss"], "loss.png"),
        (["plot", "pe"], "pe.png"),
        (["plot", "pe-similarity", "--n-positions", "16"], "sim.svg"),
    ):
        r = cli(*args, "--run", run, "--out", str(tmp_path / name))
        assert r.code == 0, args
        printed += r.out
        assert (tmp_path / name).stat().st_size > 5_000
    assert printed.count(CJK_FONT.describe()) == 5

    r = cli("neighbors", "明", "--run", run, "-k", "3")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == f"nearest to '明' in {run}:" and len(lines) == 5  # title, header, 3 rows

    r = cli("trace", "明月", "--run", run)
    assert r.code == 0
    assert "4. token vectors  shape (1, 2, 16)" in r.out

    r = cli("report", "--run", run, "--out", str(tmp_path / "report.html"), "--max-new-tokens", "20")
    assert r.code == 0
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<td>validation text</td><td>the run&#x27;s validation split</td>" in page
    assert "<td>tokens per character</td><td class=num>1</td>" in page  # a char tokenizer: one per character
    assert page.count("data:image/png;base64,") == 6 and "not available" not in page


@pytest.mark.slow
def test_cli_run_errors(trained_run, tmp_path, cli):
    run = str(trained_run)
    r = cli("plot", "attention", "--run", run, "--text", "明月", "--layer", "2")
    assert r.code == 2
    assert r.err.strip() == ("tokvec: error: layer 2 is out of range: this model has 2 layers, numbered 0..1")
    r = cli("neighbors", "王", "--run", run)
    assert r.code == 2
    assert "tokvec: error: token '王' is not in the vocabulary" in r.err
    r = cli("neighbors", "明月", "--run", run)
    assert r.code == 2
    assert "it is 2 tokens here ('明', '月')" in r.err
    r = cli("plot", "embeddings", "--run", str(tmp_path / "nope"))
    assert r.code == 2
    assert r.err.startswith(f"tokvec: error: no run directory at {tmp_path / 'nope'}")
