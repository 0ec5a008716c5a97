"""`tokvec serve`: the live explorer in the browser (docs/serve.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from . import CLIError, app, err, out

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command()
def serve(
    run: Optional[list[Path]] = typer.Option(None, "--run", help="Run directory to explore; repeatable."),
    tokenizer: Optional[list[Path]] = typer.Option(
        None, "--tokenizer", "-t", help="A tokenizer file to compare splits with; repeatable."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", help="Port (0: any free one)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch threads (torch's default)."),
) -> None:
    """A live explorer in the browser: tokens, vectors, attention, next-token odds, generation."""
    import socket

    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as e:
        raise CLIError(
            f"tokvec serve needs the web server packages ({e.name} is missing): pip install 'tokvec[serve]'"
        ) from None
    from ..serve import load_sources

    if not run and not tokenizer:
        raise CLIError(
            "serve needs something to show: pass --run DIR (a directory written by `tokvec train`) "
            "and/or --tokenizer FILE"
        )
    if not 0 <= port <= 65535:
        raise CLIError(f"--port {port} is not a port number; use 1..65535, or 0 for any free port")
    if threads is not None:
        import torch

        if threads < 1:
            raise CLIError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    loopback = host in LOOPBACK
    # on loopback, answer only to this machine's own names (no DNS rebinding from a web page)
    application = create_app(load_sources(run or [], tokenizer or []), allowed_hosts=LOOPBACK if loopback else None)
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as e:
        raise CLIError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port (0 takes any free one)"
        ) from None
    bound = sock.getsockname()[1]
    if not loopback:
        err.print(
            f"tokvec: warning: listening on {host}: anyone who can reach this machine can use the explorer "
            f"(there is no login); use --host 127.0.0.1 to keep it to this machine",
            markup=False,
            soft_wrap=True,
        )
    shown = f"[{host}]" if ":" in host else host
    out.print(f"tokvec serve: http://{shown}:{bound}/  (Ctrl-C stops it)", markup=False, soft_wrap=True)
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(application, log_level="warning", access_log=False, timeout_graceful_shutdown=2, lifespan="on")
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    out.print("tokvec serve: stopped", markup=False)
