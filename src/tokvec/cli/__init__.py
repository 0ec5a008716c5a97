"""The ``tokvec`` command line. Thin: parse, call the library, print.

Every error a user can cause prints one line (``tokvec: error: ...``) and exits 2; no traceback.
"""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

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


# config fields whose flag is not the field's name with dashes
_FLAG_OF_FIELD = {
    "n_layers": "--layers",
    "n_heads": "--heads",
    "context_length": "--context",
    "warmup_steps": "--warmup",
}


@contextmanager
def in_flag_names(fields: Iterable[str]) -> Iterator[None]:
    """Around building and validating a config from flags: an error naming config fields (``n_heads``,
    ``warmup_steps``) names the command's flags instead (``--heads``, ``--warmup``), the names the
    user typed. Only the given fields are renamed, only as whole words (``min_lr`` is not ``lr``)."""
    try:
        yield
    except TokvecError as e:
        flags = {f: _FLAG_OF_FIELD.get(f, "--" + f.replace("_", "-")) for f in fields}
        if flags and e.args and isinstance(e.args[0], str):
            words = re.compile(
                r"(?<![\w.=-])(" + "|".join(map(re.escape, sorted(flags, key=len, reverse=True))) + r")(?!\w)"
            )
            e.args = (words.sub(lambda m: flags[m.group(1)], e.args[0]), *e.args[1:])
        raise


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

    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
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
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """tokvec: see every stage from text to vectors."""


def read_text_file(path: Path, encoding: str = "utf-8") -> str:
    """Read a whole corpus file, turning decode failures into a one-line error naming the offset."""
    if not path.is_file():
        raise CLIError(f"no such file: {path}")
    from ..corpus import read_text  # lazily: keeps `tokvec --help` free of numpy

    return read_text(path, encoding)


def check_out(out_path: Path, inputs=(), *, run: Optional[Path] = None, flag: str = "--out") -> None:
    """Refuse an output that is one of the command's inputs (or a file of the run it reads), before any work."""
    from .._io import check_output
    from ..runs.lock import run_files

    check_output(out_path, [*inputs, *(run_files(run) if run is not None else [])], flag=flag)


def _preview(x, rows: int = 4, cols: int = 6, also: tuple[int, ...] = ()):
    """The first ``rows`` rows of x: (seq, d), and the rows ``also`` (e.g. where the padding starts); every
    cut (rows or columns) is marked with … and how many were left out."""
    from rich.table import Table

    n_rows, n_cols = x.shape[0], x.shape[-1]
    more_cols = ["…"] if n_cols > cols else []
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("pos")
    for j in range(min(cols, n_cols)):
        table.add_column(f"d{j}", justify="right")
    if n_cols > cols:
        table.add_column(f"… {n_cols - cols} more")
    shown = sorted(set(range(min(rows, n_rows))) | {i for i in also if 0 <= i < n_rows})
    previous = -1
    for i in shown:
        if i > previous + 1:
            table.add_row(f"… {i - previous - 1} more")
        cells = [f"{float(v):+.4f}" for v in x[i, :cols]]
        table.add_row(str(i), *cells, *more_cols)
        previous = i
    if n_rows > previous + 1:
        table.add_row(f"… {n_rows - previous - 1} more")
    return table


DEVICE_HELP = "auto (CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps; `tokvec env` lists them."


def stop_interrupted(last_step: int, run_dir, saved_step: Optional[int], command: str) -> None:
    """After Ctrl-C: one line saying where training stopped and what it left (``saved_step``, read from
    disk: a second Ctrl-C may have cut a checkpoint short), then exit 130."""
    left = (
        f"no checkpoint was saved in {run_dir}"
        if saved_step is None
        else f"the last checkpoint in {run_dir} is step {saved_step}; continue with: {command} --resume {run_dir}"
    )
    err.print(f"tokvec: interrupted after step {last_step}; {left}", markup=False, soft_wrap=True)
    raise typer.Exit(130)


def check_resume_flags(resume: Optional[Path], out_dir: Optional[Path], force: bool) -> None:
    """``--resume DIR`` continues DIR: refuse an ``--out`` elsewhere and ``--force`` (which starts over)."""
    if resume is None:
        return
    if out_dir is not None and out_dir.resolve() != resume.resolve():
        raise CLIError(
            f"--out {out_dir} and --resume {resume} differ; a resumed run continues in its own directory, so drop --out"
        )
    if force:
        raise CLIError(f"--resume continues the run in {resume} and --force starts it over; pass only one")


def resolve_device_flag(spec: str, command: str, *, announce: bool = True):
    """The torch.device ``--device`` names (a one-line error naming the devices there are); for ``auto``,
    a note on stderr saying what it chose and why (``announce=False``: the caller calls
    :func:`announce_device` once its own checks have passed, so an error stays the only line)."""
    from ..device import resolve_device

    device = resolve_device(spec)
    if announce:
        announce_device(spec, device, command)
    return device


def announce_device(spec: str, device, command: str) -> None:
    """For ``--device auto``: one stderr line saying which device it chose and why. ``device``: a
    torch.device, or a module whose parameters say it."""
    from ..device import Inventory, auto_reason

    if hasattr(device, "parameters"):
        device = next(device.parameters()).device
    if spec.strip().lower() == "auto":
        err.print(f"tokvec {command}: device {device} (auto: {auto_reason(device, Inventory.probe())})", markup=False)


def _open_run(run: Optional[Path], command: str, device: str = "cpu"):
    from ..runs.rundir import open_run

    if run is None:
        raise CLIError(f"{command} needs a trained run: pass --run DIR (a directory written by `tokvec train`)")
    # the auto-device note is the command's to print once it has succeeded (an error stays one line)
    return open_run(run, device=resolve_device_flag(device, command, announce=False))


def _click_exceptions():
    """Click's exception classes: typer >= 0.2x vendors click as ``typer._click``, older typer uses click."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions
    return exceptions


def _given_value(error, argv: list[str]) -> str:
    """`` (got 'abc')`` for a bad option value, read back from the command line; else ''."""
    param = getattr(error, "param", None)
    opts = [o for o in (getattr(param, "opts", None) or []) if o.startswith("-")]
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                return f" (got {argv[i + 1]!r})"
            if arg.startswith(opt + "="):
                return f" (got {arg[len(opt) + 1 :]!r})"
    return ""


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``tokvec`` script: run the app; every error a user can cause, the command
    line's own usage errors included, becomes one ``tokvec: error: ...`` line and exit 2."""
    click = _click_exceptions()
    try:
        code = app(args=argv, prog_name="tokvec", standalone_mode=False)
    except click.NoArgsIsHelpError as e:  # `tokvec` / `tokvec plot` alone: the help page
        out.print(e.ctx.get_help() if e.ctx else "", markup=False, highlight=False)
        sys.exit(0)
    except click.UsageError as e:  # unknown option, missing argument, "abc" for an integer ...
        where = f"; see `{e.ctx.command_path} --help`" if e.ctx is not None else ""
        message = " ".join(e.format_message().split()).rstrip(".")
        given = _given_value(e, sys.argv[1:] if argv is None else argv)
        err.print(f"tokvec: error: {message}{given}{where}", markup=False, soft_wrap=True)
        sys.exit(2)
    except click.ClickException as e:  # pragma: no cover - click's other errors (bad file modes, ...)
        err.print(f"tokvec: error: {' '.join(e.format_message().split())}", markup=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err.print("tokvec: interrupted", markup=False)
        sys.exit(130)
    except (TokvecError, OSError) as e:
        message = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename and str(e.filename) not in message:
            message = f"{message}: {e.filename}"
        err.quiet = False  # a rank silenced under torchrun still reports its own failure
        err.print(f"tokvec: error: {_rank_prefix()}{' '.join(message.splitlines())}", markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("tokvec: interrupted", markup=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)  # as click's standalone mode: main() always exits


def _rank_prefix() -> str:
    """``[rank N] `` under torchrun with several processes, else nothing (an unreadable env: nothing)."""
    from ..runs.launch import launch_env

    try:
        world, rank, _ = launch_env()
    except TokvecError:
        return ""
    return f"[rank {rank}] " if world > 1 else ""


# The command groups register themselves on `app`; imported in the order `tokvec --help` lists them.
# isort: off
from . import embed, tokenizer, positional, train, hf, generate, classify, plot, explore, vectors, report, serve, env  # noqa: E402,F401
# isort: on
