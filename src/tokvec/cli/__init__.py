"""The ``tokvec`` command line. Thin: parse, call the library, print.

Every error a user can cause prints one line (``tokvec: error: ...``) and exits 2; no traceback.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import typer
from rich.console import Console

from .._version import version
from ..errors import TokvecError

app = typer.Typer(
    name="tokvec",
    help="Text -> token ids -> the vectors a Transformer reads, and on to a language model.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

SEED_SENTENCES = ["你好好嗎嗎", "小沈阳江西演唱会邀请了,"]


class CLIError(TokvecError):
    """A problem with the command line itself (a missing file, conflicting flags)."""


@contextmanager
def progress_bar(total: Optional[float], description: str) -> Iterator[Callable[[float], None]]:
    """The one progress helper: yields ``advance(n)``. Draws on stderr, only when it is a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        # fields: e.g. description="loss 1.23" to update the text as the task runs
        yield lambda n=1, **fields: bar.update(task, advance=n, **fields)


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"tokvec {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """tokvec: see every stage from text to vectors."""


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """Read a whole corpus file, turning decode failures into a one-line error naming the offset."""
    if not path.is_file():
        raise CLIError(f"no such file: {path}")
    from ..corpus import read_text  # lazily: keeps `tokvec --help` free of numpy

    return read_text(path, encoding)


def _preview(x, rows: int = 4, cols: int = 6, also: tuple[int, ...] = ()):
    """The first ``rows`` rows of x: (seq, d), and the rows ``also`` (e.g. where the padding starts)."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("pos")
    for j in range(min(cols, x.shape[-1])):
        table.add_column(f"d{j}", justify="right")
    if x.shape[-1] > cols:
        table.add_column("…")
    shown = sorted(set(range(min(rows, x.shape[0]))) | {i for i in also if 0 <= i < x.shape[0]})
    previous = -1
    for i in shown:
        if i > previous + 1:
            table.add_row("…")
        cells = [f"{float(v):+.4f}" for v in x[i, :cols]]
        table.add_row(str(i), *cells, *(["…"] if x.shape[-1] > cols else []))
        previous = i
    return table


def _open_run(run: Optional[Path], command: str):
    from ..runs.rundir import open_run

    if run is None:
        raise CLIError(f"{command} needs a trained run: pass --run DIR (a directory written by `tokvec train`)")
    return open_run(run)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``tokvec`` script: run the app, turn tokvec errors into one line + exit 2."""
    try:
        app(args=argv, prog_name="tokvec")
    except (TokvecError, OSError) as e:
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{message}: {e.filename}"
        err.quiet = False  # a rank silenced under torchrun still reports its own failure
        rank = f"[rank {os.environ['RANK']}] " if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else ""
        err.print(f"tokvec: error: {rank}{message}", markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("tokvec: interrupted", markup=False)
        sys.exit(130)


# The command groups register themselves on `app`; imported in the order `tokvec --help` lists them.
# isort: off
from . import embed, tokenizer, positional, train, hf, generate, classify, plot, explore, vectors, report, serve  # noqa: E402,F401
# isort: on
