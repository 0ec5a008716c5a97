"""`tokvec import` and `tokvec export`: Hugging Face model directories in and out (docs/hf.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import CLIError, app, out, progress_bar


def _bytes_bar(description: str):
    """A progress bar over bytes, as a ``progress(done, total)`` callback for the runs.hf functions."""
    from contextlib import contextmanager

    @contextmanager
    def bar():
        with progress_bar(None, description) as advance:
            seen = {"done": 0}

            def progress(done: int, total: int) -> None:
                advance(done - seen["done"], total=total)
                seen["done"] = done

            yield progress

    return bar()


@app.command("import")
def import_cmd(
    source: Path = typer.Argument(
        ..., help="A local Hugging Face model directory (config.json, model.safetensors, tokenizer.json)."
    ),
    out_dir: Path = typer.Option(..., "--out", help="The run directory to create."),
    tokenizer: Optional[Path] = typer.Option(
        None,
        "--tokenizer",
        "-t",
        help="Use this tokenizer file instead of SOURCE/tokenizer.json (ids must match the model).",
    ),
) -> None:
    """Import a GPT-2, Llama, Mistral or Qwen2 checkpoint as a tokvec run (generate, plot, trace, train --init-from)."""
    from ..runs.hf import import_hf

    if not source.is_dir():
        raise CLIError(f"no model directory at {source}; download one first (tokvec fetches nothing)")
    with _bytes_bar("reading weights") as progress:
        run = import_hf(source, out_dir, tokenizer=tokenizer, progress=progress)
    from ..runs.checkpoint import read_run_config

    model = read_run_config(run)["model"]
    out.print(
        f"imported {source} -> {run} ({model['n_layers']} layers, d_model {model['d_model']}, "
        f"{model['positional']}, vocab {model['vocab_size']})",
        markup=False,
        soft_wrap=True,
    )


@app.command("export")
def export_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory to export."),
    format_: str = typer.Option("hf", "--format", help="hf: a Hugging Face model directory."),
    out_dir: Path = typer.Option(..., "--out", help="Directory to write (new or empty)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier Hugging Face export in --out."),
) -> None:
    """Export a run as a directory transformers loads: AutoModelForCausalLM / AutoTokenizer.from_pretrained(OUT)."""
    from ..runs.hf import export_hf

    if format_ != "hf":
        raise CLIError(
            f"--format {format_!r} is not an export format; use --format hf "
            f"(tokenizers alone: tokvec tokenizer export --format hf|tiktoken)"
        )
    with _bytes_bar("writing weights") as progress:
        path = export_hf(run, out_dir, overwrite=force, progress=progress)
    arch = read_json_file(path / "config.json")["architectures"][0]
    out.print(
        f"exported {run} -> {path} ({arch}); load it with "
        f"transformers.AutoModelForCausalLM.from_pretrained({str(path)!r})",
        markup=False,
        soft_wrap=True,
    )


def read_json_file(path: Path):
    from .._io import read_json

    return read_json(path)
