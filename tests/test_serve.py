"""tokvec serve: the JSON API, in process (Starlette's TestClient). Each endpoint's numbers are checked
against the library function the CLI uses on the same input (trace, attention_maps, positional_scores,
sampling_probs, stream, GPT.num_parameters), and every limit against the status and message it promises."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
import torch

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'tokvec[serve]'")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (the test extra)")

from starlette.testclient import TestClient  # noqa: E402

import tokvec  # noqa: E402
from tokvec import GPT, BPETokenizer, CharTokenizer, ModelConfig  # noqa: E402
from tokvec.generate import sampling_probs, stream  # noqa: E402
from tokvec.serve import load_sources, views  # noqa: E402
from tokvec.serve.app import MAX_NEW_TOKENS, create_app  # noqa: E402
from tokvec.viz import attention_maps, open_run, positional_scores, trace  # noqa: E402

CORPUS = (
    "ROMEO: But soft, what light through yonder window breaks? <script>alert(1)</script> </textarea>\n"
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。你好好嗎嗎\n"
) * 3
METRICS = [
    {"step": 10, "split": "train", "loss": 4.0},
    {"step": 10, "split": "val", "loss": 4.2},
    {"step": 20, "split": "train", "loss": 3.0},
    {"step": 20, "split": "val", "loss": float("nan")},
]


def make_run(path, tok, *, positional="learned", context_length=24, n_layers=2, n_heads=2, d_model=16, metrics=True):
    """A run directory as `tokvec train` writes it (untrained weights: the views only read them)."""
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tok.vocab_size,
        context_length=context_length,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        positional=positional,
    )
    tokvec.save_run(
        path,
        model=GPT(config).eval(),
        tokenizer=tok,
        model_config=config.to_dict(),
        train_config={"lr": 1e-3, "corpus": None},
        step=20,
    )
    if metrics:
        lines = [json.dumps(r) for r in METRICS]
        (path / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    char = CharTokenizer.train([CORPUS])
    bpe = BPETokenizer.train_from_texts([CORPUS], vocab_size=300, allow_smaller=True)
    bpe.save(root / "bpe.json")
    make_run(root / "learned", char)
    make_run(root / "rope", char, positional="rope", metrics=False)
    sources = load_sources([root / "learned", root / "rope"], [root / "bpe.json"])
    with TestClient(create_app(sources)) as client:
        client.sources = {s.id: s for s in sources}
        client.root = root
        yield client


def post(client, path, **body):
    return client.post(path, json=body)


# -- listing and the page --------------------------------------------------------------------
def test_runs_lists_each_source_by_id_without_paths(served):
    data = served.get("/api/runs").json()
    assert [r["id"] for r in data["runs"]] == ["learned", "rope", "bpe"]
    learned = data["runs"][0]
    assert learned | {"step": 20} == {
        "id": "learned",
        "name": "learned",
        "kind": "run",
        "tokenizer": "char",
        "vocab_size": served.sources["learned"].tokenizer.vocab_size,
        "context_length": 24,
        "n_layers": 2,
        "n_heads": 2,
        "d_model": 16,
        "positional": "learned",
        "step": 20,
    }
    assert data["runs"][2]["kind"] == "tokenizer" and "context_length" not in data["runs"][2]
    assert str(served.root) not in json.dumps(data)


def test_page_and_assets_are_served_with_a_strict_content_policy(served):
    page = served.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]  # no inline script can run
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/static/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    js = served.get("/static/app.js")
    assert js.status_code == 200 and len(js.text) > 5000
    assert "innerHTML" not in js.text and "insertAdjacentHTML" not in js.text  # text goes in as text only
    assert served.get("/static/style.css").status_code == 200


# -- tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["床前明月光，你好", "ROMEO: But soft", "<script>alert(1)</script></textarea>"])
def test_tokens_are_the_tokenizers_pieces_ids_bytes_and_ranks(served, text):
    tok = served.sources["learned"].tokenizer
    view = post(served, "/api/tokens", run="learned", text=text).json()
    assert [t["piece"] for t in view["tokens"]] == tok.tokens(text)
    assert [t["id"] for t in view["tokens"]] == tok.encode(text)
    assert [bytes.fromhex(t["bytes"]) for t in view["tokens"]] == [c.encode("utf-8") for c in text]
    # char vocabulary: <pad> <unk> <bos> <eos>, then by descending frequency: rank = id - 3
    assert [t["rank"] for t in view["tokens"]] == [i - 3 for i in tok.encode(text)]
    assert view["count"] == len(text) and view["tokens_per_char"] == 1.0
    assert (view["window"] is None) == (len(text) <= 24)  # the context of the run


def test_unknown_characters_are_unk_and_have_no_rank(served):
    view = post(served, "/api/tokens", run="learned", text="王z").json()
    assert [(t["id"], t["special"], t["rank"]) for t in view["tokens"]] == [(1, True, None)] * 2
    assert view["unk_id"] == 1


def test_a_bpe_tokenizer_file_splits_beside_the_run(served):
    tok = served.sources["bpe"].tokenizer
    text = "But soft, 明月光"
    view = post(served, "/api/tokens", run="bpe", text=text).json()
    assert [t["id"] for t in view["tokens"]] == tok.encode(text)
    assert [bytes.fromhex(t["bytes"]) for t in view["tokens"]] == tok.token_bytes(text)
    assert b"".join(bytes.fromhex(t["bytes"]) for t in view["tokens"]) == text.encode("utf-8")
    assert [t["rank"] for t in view["tokens"]] == tok.encode(text)  # byte-level BPE: the id is the merge rank
    assert view["count"] < len(text.encode("utf-8")) and view["rank_basis"].startswith("merge rank")
    assert view["tokens_per_char"] == pytest.approx(view["count"] / len(text))


def test_a_long_text_is_listed_in_part_and_counted_in_full(served):
    text = "ab" * (views.MAX_SHOWN_TOKENS)
    view = post(served, "/api/tokens", run="bpe", text=text).json()
    assert view["count"] == len(served.sources["bpe"].tokenizer.encode(text))
    assert view["shown"] == len(view["tokens"]) == min(view["count"], views.MAX_SHOWN_TOKENS)


# -- the context window ----------------------------------------------------------------------
def test_text_over_the_context_is_cut_to_its_tail_with_a_notice(served):
    src = served.sources["learned"]
    text = "床前明月光，疑是地上霜。举头望明月，低头思故乡。ROMEO: But soft"  # 39 characters, context 24
    view = post(served, "/api/tokens", run="learned", text=text).json()
    assert view["count"] == 39 and view["window"] == {
        "start": 15,
        "total_tokens": 39,
        "kept_tokens": 24,
        "context_length": 24,
    }
    vec = post(served, "/api/vectors", run="learned", text=text).json()
    assert vec["window"] == view["window"] and vec["ids"] == src.tokenizer.encode(text[15:])
    assert views.decode_array(vec["input_vectors"]).shape == (24, 16)
    att = post(served, "/api/attention", run="learned", text=text).json()
    assert att["window"]["kept_tokens"] == 24 and att["weights"]["shape"] == [2, 24, 24]


def test_fit_context_keeps_the_longest_tail_that_fits():
    tok = BPETokenizer.train_from_texts([CORPUS], vocab_size=300, allow_smaller=True)
    text = CORPUS[:200]
    for limit in (1, 7, 30):
        tail, window = views.fit_context(tok, text, limit)
        assert len(tok.encode(tail)) <= limit < len(tok.encode(text[window["start"] - 1 :]))
        assert text.endswith(tail) and window["start"] == len(text) - len(tail)
    assert views.fit_context(tok, "short", 100) == ("short", None)


# -- vectors ---------------------------------------------------------------------------------
def test_vectors_are_the_trace_of_the_text(served):
    src = served.sources["learned"]
    text = "明月光 soft"
    view = post(served, "/api/vectors", run="learned", text=text).json()
    t = trace(text, src.tokenizer, src.model.embed)
    assert view["stages"] == [{"name": s.name, "shape": list(s.shape), "note": s.note} for s in t.stages]
    assert [s["shape"] for s in view["stages"]][-3:] == [[1, 8, 16], [8, 16], [1, 8, 16]]
    np.testing.assert_array_equal(views.decode_array(view["token_vectors"]), t.stage("token vectors").value[0].numpy())
    np.testing.assert_array_equal(
        views.decode_array(view["positional"]["vectors"]), t.stage("position vectors").value.numpy()
    )
    np.testing.assert_array_equal(views.decode_array(view["input_vectors"]), t.stage("input vectors").value[0].numpy())
    np.testing.assert_allclose(
        views.decode_array(view["input_vectors"]),  # the sum the page shows, as a sum
        views.decode_array(view["token_vectors"]) + views.decode_array(view["positional"]["vectors"]),
        atol=1e-6,
    )


def test_an_attention_level_scheme_shows_the_score_pattern_it_adds(served):
    src = served.sources["rope"]
    view = post(served, "/api/vectors", run="rope", text="明月光").json()
    pos = view["positional"]
    assert pos["acts_on"] == "attention" and "vectors" not in pos
    want = positional_scores(src.model.embed.positional, n_positions=3, d_model=16, n_heads=2)
    got = views.decode_array(pos["scores"])
    np.testing.assert_allclose(got, want.scores.astype(np.float32), rtol=1e-6)
    assert np.isnan(got[0, 0, 1]) and got[0, 2, 0] == pytest.approx(want.scores[0, 2, 0], rel=1e-6)
    np.testing.assert_array_equal(views.decode_array(view["input_vectors"]), views.decode_array(view["token_vectors"]))


def test_a_scheme_that_adds_nothing_says_so():
    tok = CharTokenizer.train(["abc"])
    model = GPT(
        ModelConfig(vocab_size=tok.vocab_size, context_length=8, d_model=8, n_layers=1, n_heads=2, positional="none")
    ).eval()
    pos = views.vectors_view(model, tok, "abc")["positional"]
    assert pos["acts_on"] == "none" and set(pos) == {"name", "acts_on", "label"}


# -- attention -------------------------------------------------------------------------------
def test_attention_is_the_models_own_pattern(served):
    src = served.sources["learned"]
    text = "床前明月光"
    view = post(served, "/api/attention", run="learned", text=text, layer=1).json()
    weights, pieces = attention_maps(src.model, src.tokenizer, text, layer=1)
    np.testing.assert_array_equal(views.decode_array(view["weights"]), weights.numpy())
    assert view["pieces"] == pieces == list(text) and (view["n_layers"], view["n_heads"]) == (2, 2)
    np.testing.assert_allclose(views.decode_array(view["weights"]).sum(-1), 1.0, rtol=1e-5)


def test_a_bad_layer_names_the_layers_there_are(served):
    r = post(served, "/api/attention", run="learned", text="明月", layer=5)
    assert r.status_code == 400 and "layer 5" in r.json()["error"] and "0..1" in r.json()["error"]


# -- next token ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options", [dict(temperature=1.0), dict(temperature=0.5, top_k=5), dict(temperature=1.3, top_p=0.5)]
)
def test_next_token_probabilities_are_the_samplers(served, options):
    src = served.sources["learned"]
    text = "床前明月"
    view = post(served, "/api/next", run="learned", text=text, k=8, **options).json()
    with torch.no_grad():
        logits = src.model(torch.tensor([src.tokenizer.encode(text)]))[0][:, -1]
    probs = sampling_probs(logits, **options)[0]
    top = torch.topk(probs, 8)
    assert [r["id"] for r in view["top"]] == top.indices.tolist()
    np.testing.assert_allclose([r["prob"] for r in view["top"]], top.values.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        [r["model_prob"] for r in view["top"]], logits.softmax(-1)[0, top.indices].numpy(), rtol=1e-6
    )
    assert sum(r["prob"] for r in view["top"]) + view["rest"] == pytest.approx(1.0, abs=1e-5)
    assert view["kept"] == int((probs > 0).sum()) and view["context_tokens"] == 4
    if "top_k" in options:
        assert view["kept"] == 5 and view["rest"] == pytest.approx(1 - sum(r["prob"] for r in view["top"]), abs=1e-6)


def test_temperature_reshapes_and_zero_is_greedy(served):
    hot = post(served, "/api/next", run="learned", text="明月", temperature=2.0).json()
    cold = post(served, "/api/next", run="learned", text="明月", temperature=0.2).json()
    greedy = post(served, "/api/next", run="learned", text="明月", temperature=0).json()
    assert cold["top"][0]["id"] == hot["top"][0]["id"] == greedy["top"][0]["id"]
    assert cold["top"][0]["prob"] > hot["top"][0]["prob"]
    assert greedy["top"][0]["prob"] == 1.0 and greedy["kept"] == 1 and greedy["rest"] == 0.0


def test_an_empty_text_starts_from_bos(served):
    view = post(served, "/api/next", run="learned", text="").json()
    assert view["context_tokens"] == 1 and len(view["top"]) == 10


@pytest.mark.parametrize(
    "body, words",
    [
        (dict(temperature=-1), ["temperature", "-1", ">= 0"]),
        (dict(top_p=1.5), ["top_p", "1.5", "(0, 1]"]),
        (dict(top_k=0), ["top_k", "0", "positive"]),
        (dict(k=1000), ["k", "1000", "[1, 100]"]),
    ],
)
def test_bad_sampler_options_are_400_naming_the_value(served, body, words):
    r = post(served, "/api/next", run="learned", text="明", **body)
    assert r.status_code == 400 and all(w in r.json()["error"] for w in words), r.json()


# -- generation ------------------------------------------------------------------------------
def sse(text: str) -> list[tuple[str, object]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_generate_streams_what_the_library_streams(served):
    src = served.sources["learned"]
    body = dict(run="learned", text="床前", max_new_tokens=12, temperature=0.9, top_k=20, seed=3)
    r = served.post("/api/generate", json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    assert events[-1] == ("done", None) and all(kind == "piece" for kind, _ in events[:-1])
    want = list(stream(src.model, src.tokenizer, "床前", 12, temperature=0.9, top_k=20, seed=3))
    assert [value for _, value in events[:-1]] == want and len(want) >= 1
    body.update(stop_at_eos=False, max_new_tokens=40)
    events = sse(served.post("/api/generate", json=body).text)
    want = list(stream(src.model, src.tokenizer, "床前", 40, temperature=0.9, top_k=20, seed=3, stop_at_eos=False))
    assert [value for _, value in events[:-1]] == want and len(want) == 40  # a piece per token, no early end


def test_generate_refuses_bad_options_before_streaming(served):
    r = post(served, "/api/generate", run="learned", text="明", max_new_tokens=MAX_NEW_TOKENS + 1)
    assert r.status_code == 400 and str(MAX_NEW_TOKENS) in r.json()["error"]
    r = post(served, "/api/generate", run="learned", text="明", stop_at_eos="no")
    assert r.status_code == 400 and "stop_at_eos" in r.json()["error"]
    r = post(served, "/api/generate", run="learned", text="明", seed="x")
    assert r.status_code == 400 and "seed" in r.json()["error"]
    r = post(served, "/api/generate", run="bpe", text="明")
    assert r.status_code == 400 and "tokenizer file" in r.json()["error"]


# -- model card ------------------------------------------------------------------------------
def test_model_card_has_config_counts_losses_and_tokenizer_stats(served):
    src = served.sources["learned"]
    card = served.get("/api/runs/learned/card").json()
    assert card["parameters"] == src.model.num_parameters() == sum(p.numel() for p in src.model.parameters())
    assert card["non_embedding_parameters"] == src.model.num_parameters(non_embedding=True)
    assert card["embedding_table"] == [src.tokenizer.vocab_size, 16]
    assert ["model.positional", "learned"] in card["config"] and ["step", 20] in card["config"]
    assert not any(k.startswith(("rng", "files")) for k, _ in card["config"])
    assert card["loss"] == [
        {"step": 10, "split": "train", "loss": 4.0},
        {"step": 10, "split": "val", "loss": 4.2},
        {"step": 20, "split": "train", "loss": 3.0},
        {"step": 20, "split": "val", "loss": None},
    ]
    assert card["tokenizer"]["kind"] == "char" and card["tokenizer"]["vocab_size"] == src.tokenizer.vocab_size
    assert card["val_text_note"].startswith("not available")  # the run records no corpus split
    bpe = served.get("/api/runs/bpe/card").json()
    assert bpe["kind"] == "tokenizer" and "parameters" not in bpe and bpe["loss"] == []


# -- limits ----------------------------------------------------------------------------------
def test_unknown_run_is_404_naming_the_ones_there_are(served):
    for r in (post(served, "/api/tokens", run="../etc", text="x"), served.get("/api/runs/nope/card")):
        assert r.status_code == 404
        assert "unknown run" in r.json()["error"] and "'learned', 'rope', 'bpe'" in r.json()["error"]
    r = served.get("/api/nothing")
    assert r.status_code == 404 and "/api/nothing" in r.json()["error"]


def test_a_request_over_the_size_limit_is_413(served):
    r = post(served, "/api/tokens", run="learned", text="好" * 40_000)  # 120 kB of UTF-8
    assert r.status_code == 413 and "100,000 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(30):
            yield b'"' + b"x" * 4000 + b'"'

    r = served.post("/api/tokens", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "100,000 bytes" in r.json()["error"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"not json", 400, ["not UTF-8 JSON"]),
        (b"[1, 2]", 400, ["JSON object", "list"]),
        (b'{"run": "learned", "text": 5}', 400, ["text must be a string", "int"]),
        (b'{"run": "learned", "text": "a\\ud800b"}', 400, ["lone surrogate", "character 1"]),
        (b'{"run": "rope", "text": ""}', 400, ["empty"]),
    ],
)
def test_bad_bodies_are_400_with_the_fix(served, body, status, words):
    path = "/api/vectors" if b'"rope"' in body else "/api/tokens"
    r = served.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and all(w in r.json()["error"] for w in words), r.json()


def test_strings_come_back_as_json_data_never_markup(served):
    text = "</textarea><script>alert(1)</script>"
    r = post(served, "/api/tokens", run="learned", text=text)
    assert r.headers["content-type"] == "application/json"
    assert "".join(t["piece"] for t in r.json()["tokens"]) == text  # as data, exact; the page sets it as text


def test_a_slow_request_does_not_hold_up_the_others(served, monkeypatch):
    import httpx

    src = list(served.sources.values())
    app = create_app(src)
    real = views.vectors_view

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "vectors_view", slow)

    async def both():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            done = {}

            async def call(name, path, body):
                r = await client.post(path, json=body)
                done[name] = time.perf_counter()
                return r

            start = time.perf_counter()
            slow_r, fast_r = await asyncio.gather(
                call("slow", "/api/vectors", {"run": "learned", "text": "明月"}),
                call("fast", "/api/tokens", {"run": "learned", "text": "明月"}),
            )
            return start, done, slow_r, fast_r

    start, done, slow_r, fast_r = asyncio.run(both())
    assert slow_r.status_code == fast_r.status_code == 200
    assert done["fast"] - start < 1.0 <= done["slow"] - start  # the fast one did not wait for the slow one


# -- the library functions behind it ---------------------------------------------------------
def test_sampling_probs_is_what_next_token_samples_from():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    probs = sampling_probs(logits, temperature=0.5, top_k=2)
    want = torch.tensor([4.0, 2.0]).softmax(-1)  # logits / T, keep the 2 largest
    torch.testing.assert_close(probs[0, :2], want) and torch.testing.assert_close(probs[0, 2:], torch.zeros(2))
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [tokvec.generate.next_token(logits, temperature=0.5, top_k=2, generator=gen) for _ in range(400)]
    ).flatten()
    assert set(draws.tolist()) == {0, 1} and abs(float((draws == 0).float().mean()) - float(want[0])) < 0.06
    assert sampling_probs(logits, temperature=0).tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_views_work_without_a_server_on_an_opened_run(served):
    run = open_run(served.root / "learned")
    view = views.tokens_view(run.tokenizer, "明月", context_length=run.model.config.context_length)
    assert [t["id"] for t in view["tokens"]] == run.tokenizer.encode("明月")


# -- the command -----------------------------------------------------------------------------
def test_cli_without_the_serve_extra_says_what_to_install(served, monkeypatch, cli):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    code, _, err = cli("serve", "--run", served.root / "learned")
    assert code == 2 and err.startswith("tokvec: error:") and len(err.strip().splitlines()) == 1
    assert "uvicorn" in err and "pip install 'tokvec[serve]'" in err


def test_cli_bad_arguments_are_one_line_errors(served, cli):
    assert "--run DIR" in cli("serve").err
    result = cli("serve", "--run", served.root / "missing")
    assert result.code == 2 and "no run directory at" in result.err
    result = cli("serve", "--run", served.root / "learned", "--port", "70000")
    assert result.code == 2 and "--port 70000" in result.err


def test_cli_warns_off_loopback_and_refuses_a_busy_port(served, monkeypatch, cli):
    import socket

    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: seen.setdefault("sockets", sockets))
    code, out, err = cli("serve", "--run", served.root / "learned", "--host", "0.0.0.0", "--port", "0")
    assert code == 0 and "tokvec: warning: listening on 0.0.0.0" in err and "--host 127.0.0.1" in err
    assert len(seen["sockets"]) == 1  # the socket the command bound (so a busy port fails before uvicorn)
    assert out.startswith("tokvec serve: http://0.0.0.0:") and out.rstrip().endswith("stopped")

    code, _, err = cli("serve", "--run", served.root / "learned", "--port", "0")
    assert code == 0 and "warning" not in err  # 127.0.0.1 by default: no warning

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        code, _, err = cli("serve", "--run", served.root / "learned", "--port", port)
        assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    finally:
        busy.close()


def test_attention_weights_of_the_first_layers_only_are_the_same_patterns():
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=20, context_length=16, d_model=16, n_layers=3, n_heads=2)).eval()
    ids = torch.randint(0, 20, (2, 9))
    full, first = model.attention_weights(ids), model.attention_weights(ids, layers=2)
    assert len(full) == 3 and len(first) == 2
    for a, b in zip(first, full):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_on_loopback_only_this_machines_names_are_answered(served):
    sources = list(served.sources.values())
    with TestClient(
        create_app(sources, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://127.0.0.1:8000"
    ) as c:
        assert c.get("/api/runs").status_code == 200
        assert c.get("/api/runs", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/api/runs", headers={"host": "rebound.example.com"}).status_code == 400


def test_a_bug_is_a_500_with_a_one_line_message(served, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "tokens_view", broken)
    with TestClient(create_app(list(served.sources.values())), raise_server_exceptions=False) as c:
        r = c.post("/api/tokens", json={"run": "learned", "text": "x"})
    assert r.status_code == 500 and r.json()["error"].startswith("internal error (RuntimeError: boom)")
