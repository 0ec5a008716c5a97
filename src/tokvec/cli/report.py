"""`tokvec report`: one self-contained HTML page about a run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import DEVICE_HELP, _open_run, announce_device, app, check_out, out, read_text_file


@app.command()
def report(
    run: Optional[Path] = typer.Option(None, "--run", help="Run directory."),
    out_path: Path = typer.Option(Path("report.html"), "--out", "-o", help="Output HTML file."),
    val_text: Optional[Path] = typer.Option(
        None,
        "--val-text",
        help="Text file for tokenizer stats (default: the run's own validation text when it records one).",
    ),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of --val-text (e.g. gb18030)."),
    prompt: str = typer.Option("", "--prompt", help="Prompt of the generated sample."),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", help="Length of the generated sample."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """One self-contained HTML page: config, parameters, tokenizer stats, losses, a sample and the plots."""
    from ..viz.report import build_report, write_report

    check_out(out_path, [val_text] if val_text else [], run=run)
    data = _open_run(run, "report", device)
    text = read_text_file(val_text, encoding) if val_text else None
    page = build_report(data, val_text=text, prompt=prompt or None, max_new_tokens=max_new_tokens, seed=seed)
    path = write_report(page, out_path)
    out.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser")
    announce_device(device, data.model, "report")
