"""The explorer's web app: a Starlette ASGI app over :mod:`tokvec.serve.views` (API in docs/serve.md).

    app = create_app(load_sources(["runs/make-run"]))     # then any ASGI server, e.g. uvicorn

Limits: a request body over ``max_body`` bytes is refused with 413; an unknown source id is a 404;
bad input is a 400 whose ``error`` names the value and the fix. Model calls run in worker threads,
so a slow request (or a long generation) does not hold up the others; a generation stops when its
client goes away or the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import TokvecError, TokvecValueError
from ..generate import check_options, stream
from . import views
from .sources import Source

STATIC = Path(__file__).parent / "static"
MAX_BODY = 100_000  # bytes of one request: ~25 pages of text, far more than a context window
MAX_NEW_TOKENS = 4096  # one generation request
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


class _JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return _JSON({"error": message}, status_code=status)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Headers:
    """ASGI middleware: security headers on every response, and ``Server-Timing: app;dur=<ms>`` (the
    time from the request to the first byte of the answer: what the latency benchmark reads)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                ms = (time.perf_counter() - start) * 1000
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                    (b"server-timing", f"app;dur={ms:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Explorer:
    """The sources and the live generations; its ``app`` is the ASGI application."""

    def __init__(
        self, sources: Sequence[Source], *, max_body: int = MAX_BODY, allowed_hosts: Sequence[str] | None = None
    ) -> None:
        if not sources:
            raise TokvecValueError(
                "nothing to serve: give at least one run (--run DIR) or tokenizer file (--tokenizer FILE)"
            )
        self.sources = {s.id: s for s in sources}
        self.max_body = max_body
        self.cancels: set[threading.Event] = set()  # one per running generation
        self.lock = threading.Lock()
        routes = [
            Route("/", self.index),
            Route("/api/runs", self.runs),
            Route("/api/status", self.status),
            Route("/api/runs/{run}/card", self.card),
            Route("/api/tokens", self.endpoint(self._tokens), methods=["POST"]),
            Route("/api/vectors", self.endpoint(self._vectors), methods=["POST"]),
            Route("/api/attention", self.endpoint(self._attention), methods=["POST"]),
            Route("/api/next", self.endpoint(self._next), methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        handlers = {HTTPException: self._http_error, _Refused: self._refused, Exception: self._crash}
        middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
        self.app = _Headers(
            Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=self.lifespan)
        )

    # -- plumbing ---------------------------------------------------------------------------------
    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        message = {
            404: f"no such page: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        return _error(exc.status_code, message.get(exc.status_code, str(exc.detail)))

    async def _refused(self, request: Request, exc: _Refused) -> Response:
        return _error(exc.status, str(exc))

    async def _crash(self, request: Request, exc: Exception) -> Response:
        # a bug, not bad input: the page shows it in one line instead of a bare "Internal Server Error"
        return _error(500, f"internal error ({type(exc).__name__}: {exc}); please report it")

    def source(self, run_id: Any, *, model: bool = False) -> Source:
        if not isinstance(run_id, str) or run_id not in self.sources:
            raise _Refused(404, f"unknown run {run_id!r}; this server has {', '.join(map(repr, self.sources))}")
        found = self.sources[run_id]
        if model and found.model is None:
            raise _Refused(400, f"{run_id!r} is a tokenizer file, it has no model; choose a run for this view")
        return found

    async def body(self, request: Request) -> dict:
        """The JSON object of the request, refused with 413 past ``max_body`` bytes (counted as they come)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise _Refused(
                413,
                f"request of {int(declared):,} bytes is over the limit of {self.max_body:,} bytes; send a shorter text",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, f"request is over the limit of {self.max_body:,} bytes; send a shorter text")
            chunks.append(chunk)
        try:
            data = json.loads(b"".join(chunks).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise _Refused(400, f"the request body is not UTF-8 JSON ({e}); send a JSON object") from None
        if not isinstance(data, dict):
            raise _Refused(400, f"the request body must be a JSON object, got {type(data).__name__}")
        return data

    def endpoint(self, compute: Callable[[dict], dict]) -> Callable:
        """A POST endpoint: parse the body, run ``compute`` in a worker thread, answer JSON or 400."""

        async def handle(request: Request) -> Response:
            data = await self.body(request)
            try:
                return _JSON(await run_in_threadpool(compute, data))
            except TokvecError as e:
                return _error(400, str(e))

        return handle

    # -- pages and small answers ------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    async def runs(self, request: Request) -> Response:
        return _JSON(
            {
                "runs": [s.describe() for s in self.sources.values()],
                "max_body": self.max_body,
                "max_new_tokens": MAX_NEW_TOKENS,
            }
        )

    async def status(self, request: Request) -> Response:
        with self.lock:
            return _JSON({"generating": len(self.cancels)})

    async def card(self, request: Request) -> Response:
        src = self.source(request.path_params["run"])

        def compute() -> dict:
            val_text, note = src.val_text()
            run = src.run
            card = views.model_card(
                src.model,
                src.tokenizer,
                None if run is None else run.config,
                None if run is None else run.metrics,
                val_text=val_text,
                val_note=note,
            )
            return {"id": src.id, "name": src.name, "kind": src.kind, **card}

        return _JSON(await run_in_threadpool(compute))

    # -- the views --------------------------------------------------------------------------------
    def _tokens(self, data: dict) -> dict:
        src = self.source(data.get("run"))
        context = None if src.model is None else int(src.model.config.context_length)
        return views.tokens_view(src.tokenizer, data.get("text"), context_length=context)

    def _vectors(self, data: dict) -> dict:
        src = self.source(data.get("run"), model=True)
        return views.vectors_view(src.model, src.tokenizer, data.get("text"))

    def _attention(self, data: dict) -> dict:
        src = self.source(data.get("run"), model=True)
        return views.attention_view(src.model, src.tokenizer, data.get("text"), layer=data.get("layer", 0))

    def _next(self, data: dict) -> dict:
        src = self.source(data.get("run"), model=True)
        return views.next_token_view(
            src.model,
            src.tokenizer,
            data.get("text", ""),
            temperature=data.get("temperature", 1.0),
            top_k=data.get("top_k"),
            top_p=data.get("top_p"),
            k=data.get("k", 10),
            token_strings=src.token_strings(),
        )

    # -- generation -------------------------------------------------------------------------------
    async def generate(self, request: Request) -> Response:
        """Server-sent events: ``event: piece`` (data: JSON string) per text piece, then ``event: done``
        (or ``event: error`` with ``{"error"}``). Closing the connection stops the generation."""
        data = await self.body(request)
        src = self.source(data.get("run"), model=True)
        try:
            text = views.check_text(data.get("text", ""))
            n = data.get("max_new_tokens", 200)
            if isinstance(n, int) and not isinstance(n, bool) and n > MAX_NEW_TOKENS:
                raise TokvecValueError(
                    f"max_new_tokens {n} is over this server's limit of {MAX_NEW_TOKENS}; "
                    f"ask for fewer and generate again to go on"
                )
            options = dict(temperature=data.get("temperature", 1.0), top_k=data.get("top_k"), top_p=data.get("top_p"))
            stop_at_eos = data.get("stop_at_eos", True)
            if not isinstance(stop_at_eos, bool):
                raise TokvecValueError(f"stop_at_eos must be true or false, got {stop_at_eos!r}")
            seed = data.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise TokvecValueError(f"seed must be an integer or null, got {seed!r}")
            check_options(n, **options)
        except TokvecError as e:
            return _error(400, str(e))
        if text:
            text = views.fit_context(src.tokenizer, text, int(src.model.config.context_length))[0]
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        with self.lock:
            self.cancels.add(cancel)

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: the server is gone, nobody is listening
                cancel.set()

        def work() -> None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # unknown prompt pieces become <unk>; the tokens view shows them
                    for piece in stream(
                        src.model, src.tokenizer, text, n, seed=seed, stop_at_eos=stop_at_eos, **options
                    ):
                        if cancel.is_set():
                            break
                        put(("piece", piece))
                put(("done", None))
            except Exception as e:  # reported to the page; the server goes on
                put(("error", {"error": str(e) or type(e).__name__}))
            finally:
                with self.lock:
                    self.cancels.discard(cancel)

        threading.Thread(target=work, name="tokvec-generate", daemon=True).start()

        async def events():
            try:
                while True:
                    kind, value = await queue.get()
                    yield f"event: {kind}\ndata: {json.dumps(value, ensure_ascii=False)}\n\n"
                    if kind != "piece":
                        return
            finally:
                cancel.set()  # the client left (or the stream ended): stop the worker

        return StreamingResponse(events(), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        yield
        self.stop_all()

    def stop_all(self) -> None:
        """Stop every running generation (the server is shutting down)."""
        with self.lock:
            for cancel in self.cancels:
                cancel.set()


def create_app(sources: Sequence[Source], *, max_body: int = MAX_BODY, allowed_hosts: Sequence[str] | None = None):
    """The ASGI app serving ``sources`` (from :func:`tokvec.serve.load_sources`).

    ``allowed_hosts``: answer only requests whose Host header is one of these (``tokvec serve`` on
    127.0.0.1 allows its own names only, so a web page that re-points a domain at 127.0.0.1 - DNS
    rebinding - cannot read the explorer); None answers any.
    """
    return Explorer(sources, max_body=max_body, allowed_hosts=allowed_hosts).app
