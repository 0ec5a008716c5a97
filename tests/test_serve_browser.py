"""tokvec serve for real: the command started as a subprocess on a free port, a run trained here, the
page driven in the system's headless Chromium by playwright (no browser download: the Chromium that
`make system-deps` installs). Skips only where playwright or Chromium cannot be had."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'tokvec[serve]'")
httpx = pytest.importorskip("httpx", reason="httpx (the test extra) is not installed")

import tokvec  # noqa: E402

pytestmark = pytest.mark.slow

CORPUS = (
    "ROMEO: But soft, what light through yonder window breaks? It is the east.\n"
    "<script>alert(1)</script> </textarea> <b>bold</b>\n"
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。你好好嗎嗎\n"
) * 30
CHINESE = "床前明月光，你好"
ENGLISH = "But soft, what light"
BPE_NAME = "<img src=x onerror=window.__pwned=3>.json"
HOSTILE = '</textarea><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    config = tokvec.TrainConfig(
        corpus=str(root / "corpus.txt"),
        tokenizer="char",
        d_model=16,
        n_layers=2,
        n_heads=2,
        context_length=32,
        max_steps=30,
        eval_interval=15,
        eval_batches=1,
        batch_size=8,
        seed=0,
        out=str(root / "poems"),
    )
    tokvec.train(config)
    # split on whitespace only, so markup from the corpus merges into tokens such as "<script>"
    bpe = tokvec.BPETokenizer.train_from_texts([CORPUS], vocab_size=400, pattern=r" ?\S+|\s+", allow_smaller=True)
    bpe.save(root / BPE_NAME)  # a hostile file name too: the page shows it as text
    return root


class Server:
    """``tokvec serve`` in a subprocess; ``url`` is read from the line it prints."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokvec", "serve", "--port", "0", "--threads", "1", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self._first_line(timeout=120)
        found = re.search(r"http://[\d.]+:\d+/", line)
        if not found:
            self.stop()
            raise AssertionError(f"tokvec serve printed {line!r}; stderr: {self.proc.stderr.read()}")
        self.url = found.group(0)

    def _first_line(self, timeout: float) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return box[0] if box else ""

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def server(trained):
    s = Server("--run", str(trained / "poems"), "--tokenizer", str(trained / BPE_NAME))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; `make system-deps` does it as root)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    # bypass_csp: playwright's waits evaluate strings; and without the page's CSP as a safety net, an
    # injected inline script WOULD run, so the hostile-text test checks the escaping itself
    pg = browser.new_page(viewport={"width": 1300, "height": 1600}, bypass_csp=True)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(server.url)
    pg.wait_for_selector("#run option", state="attached")
    pg.errors = errors
    yield pg
    pg.close()


def shown_tokens(pg, box="#pieces"):
    return pg.eval_on_selector_all(
        f"{box} .tok", "els => els.map(e => [e.dataset.piece, Number(e.dataset.id), e.textContent])"
    )


def type_and_wait(pg, text, box="#pieces"):
    pg.fill("#text", "")
    pg.type("#text", text, delay=5)
    count = len(text)  # char tokenizer: one piece per character
    pg.wait_for_function(f"document.querySelectorAll('{box} .tok').length === {count}", timeout=30_000)


def test_tokens_of_chinese_and_english_are_the_tokenizers(page, trained):
    from tokvec import load_tokenizer
    from tokvec.viz import open_run

    tok = open_run(trained / "poems").tokenizer
    bpe = load_tokenizer(trained / BPE_NAME)
    for text in (CHINESE, ENGLISH):
        type_and_wait(page, text)
        shown = shown_tokens(page)
        assert [p for p, _, _ in shown] == tok.tokens(text) and [i for _, i, _ in shown] == tok.encode(text)
        assert [t for p, _, t in shown if p != " "] == [p for p in tok.tokens(text) if p != " "]
        stats = page.text_content("#token-stats")
        assert f"{len(text)} tokens, {len(text)} characters, 1.000 tokens/char" in stats
        # the second split, beside it: the BPE tokenizer file
        page.wait_for_function(f"document.querySelectorAll('#pieces-b .tok').length === {len(bpe.encode(text))}")
        assert [i for _, i, _ in shown_tokens(page, "#pieces-b")] == bpe.encode(text)
    page.hover("#pieces .tok >> nth=1")
    hover = page.text_content("#hover")
    assert f"id {tok.encode(ENGLISH)[1]}" in hover and "bytes 75" in hover and "frequency rank" in hover
    assert page.errors == []


def test_hostile_text_is_shown_not_run(page, trained):
    from tokvec import load_tokenizer

    type_and_wait(page, HOSTILE)
    shown = shown_tokens(page)
    assert "".join(p for p, _, _ in shown) == HOSTILE
    bpe = load_tokenizer(trained / BPE_NAME)
    page.wait_for_function(f"document.querySelectorAll('#pieces-b .tok').length === {len(bpe.encode(HOSTILE))}")
    pieces = [p for p, _, _ in shown_tokens(page, "#pieces-b")]
    assert pieces == bpe.tokens(HOSTILE) and "<script>" in pieces  # a token learned from the corpus, as text
    at = pieces.index("<script>")  # where it falls depends on the trained merges
    assert page.text_content(f"#pieces-b .tok >> nth={at}") == "<script>"
    assert BPE_NAME in page.text_content("#token-stats-b") and BPE_NAME in page.text_content("#compare")
    page.wait_for_function("document.querySelectorAll('#attn-tokens .tok').length > 0")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('textarea').length") == 1
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # app.js only
    assert page.evaluate("document.querySelectorAll('img, [onerror]').length") == 0
    assert page.input_value("#text") == HOSTILE


def probabilities(pg):
    return pg.eval_on_selector_all("#top li", "els => els.map(e => Number(e.dataset.prob))")


def test_temperature_reshapes_the_shown_probabilities(page):
    type_and_wait(page, "ROMEO: But")
    page.wait_for_function("document.querySelectorAll('#top li').length === 11")
    before = probabilities(page)
    assert sum(before) == pytest.approx(1.0, abs=1e-3)
    page.focus("#temperature")
    for _ in range(12):  # 1.00 -> 0.40 in steps of 0.05, as a user's arrow keys do
        page.keyboard.press("ArrowLeft")
    assert page.text_content("#temperature-out") == "0.40"
    page.wait_for_function(
        f"Number(document.querySelector('#top li').dataset.prob) > {before[0] + 1e-4}", timeout=30_000
    )
    after = probabilities(page)
    assert after != before and after[0] > before[0]  # colder: the favourite gains
    assert sum(after) == pytest.approx(1.0, abs=1e-3)
    page.fill("#top-k", "3")
    page.wait_for_function("document.querySelector('#next-stats').textContent.startsWith('3 of')", timeout=30_000)
    kept = probabilities(page)
    assert sum(kept[:3]) == pytest.approx(1.0, abs=1e-3) and kept[-1] == pytest.approx(0.0, abs=1e-6)


def test_generate_streams_text_in_and_stop_ends_it(page):
    type_and_wait(page, "ROMEO:")
    page.fill("#max-new", "3000")
    page.uncheck("#stop-at-eos")  # a model trained for seconds samples <eos> early and often
    page.evaluate("""() => { window.__lengths = []; const box = document.getElementById('text');
        window.__poll = setInterval(() => window.__lengths.push(box.value.length), 5); }""")
    page.click("#generate")
    page.wait_for_function("document.getElementById('text').value.length > 60", timeout=60_000)
    assert page.is_enabled("#stop") and not page.is_enabled("#generate")
    page.click("#stop")
    page.wait_for_function("document.getElementById('gen-status').textContent.startsWith('stopped')", timeout=30_000)
    lengths = page.evaluate("clearInterval(window.__poll), window.__lengths")
    grew = sorted(set(lengths))
    assert len(grew) >= 3  # the text arrived piece by piece, not at once
    text = page.input_value("#text")
    assert text.startswith("ROMEO:") and 60 < len(text) < 3000 + 6
    assert page.is_enabled("#generate")


def test_attention_click_shows_where_a_token_looks(page):
    type_and_wait(page, "明月光", box="#attn-tokens")
    page.click("#attn-tokens .tok >> nth=1")
    looks = page.text_content("#attn-looks")
    assert looks.startswith('query 1 "月"') and "@0" in looks and "@1" in looks and "@2" not in looks  # causal


def test_screenshot_is_not_blank(page, tmp_path):
    from PIL import Image, ImageStat

    type_and_wait(page, "床前明月光 ROMEO:")
    page.wait_for_function("document.querySelectorAll('#top li').length === 11")
    page.wait_for_function("document.querySelector('#card-model tr') !== null")
    path = tmp_path / "page.png"
    page.screenshot(path=str(path), full_page=True)
    image = Image.open(path).convert("L")
    assert image.size[0] >= 1000 and ImageStat.Stat(image).stddev[0] > 20  # drawn content, not one flat colour
    assert page.errors == []


def test_generation_is_cancelled_when_the_client_leaves_and_does_not_block(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        body = {"run": "poems", "text": "ROMEO:", "max_new_tokens": 4000, "stop_at_eos": False}
        with client.stream("POST", "/api/generate", json=body) as r:
            lines = r.iter_lines()
            assert next(lines) == "event: piece"
            start = time.perf_counter()
            tokens = client.post("/api/tokens", json={"run": "poems", "text": "明月"})
            assert tokens.status_code == 200 and time.perf_counter() - start < 20
            assert client.get("/api/status").json()["generating"] == 1  # still going meanwhile
        deadline = time.time() + 20
        while client.get("/api/status").json()["generating"] and time.time() < deadline:
            time.sleep(0.1)
        assert client.get("/api/status").json()["generating"] == 0


def test_ctrl_c_stops_the_server_cleanly_even_mid_generation(trained):
    s = Server("--run", str(trained / "poems"))
    body = json.dumps({"run": "poems", "text": "ROMEO:", "max_new_tokens": 4000, "stop_at_eos": False})
    try:
        with httpx.Client(base_url=s.url, timeout=60) as client:
            with client.stream("POST", "/api/generate", content=body) as r:
                assert next(r.iter_lines()) == "event: piece"
                code, out, err = s.stop()  # SIGINT, what Ctrl-C sends
    finally:  # a failure above must not leave the server running after the tests
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.communicate()
    assert code == 0, err
    assert out.rstrip().endswith("tokvec serve: stopped") and "Traceback" not in err
