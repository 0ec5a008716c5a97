"""`tokvec generate`: sample text from a trained run (one prompt or interactive)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from . import DEVICE_HELP, CLIError, announce_device, app, err, resolve_device_flag


@app.command("generate")
def generate_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory written by `tokvec train`."),
    prompt: str = typer.Option("", "--prompt", "-p", help="Text to continue (default: start from <bos>)."),
    max_new_tokens: int = typer.Option(200, "--max-new-tokens", "-n", help="Tokens to generate."),
    temperature: float = typer.Option(
        0.8, "--temperature", help="Sampling temperature; 0 = greedy (0.8, tokvec.generate.DEFAULT_TEMPERATURE)."
    ),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample among the k most likely tokens."),
    top_p: Optional[float] = typer.Option(
        None, "--top-p", help="Nucleus: the most likely tokens holding p of the probability, p in (0, 1]."
    ),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="> 1 discourages repeats (CTRL)."),
    stop: Optional[list[str]] = typer.Option(
        None, "--stop", help="End before this text (repeatable; \\n and \\t are read as newline and tab)."
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sampler (same seed, same text)."),
    interactive: bool = typer.Option(
        False,
        "--interactive",
        "-i",
        help="A prompt loop: type a prompt, watch the text stream; an empty line or Ctrl-D ends it.",
    ),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Use the KV cache (much faster)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Sample text from a trained run; the text streams as it is produced."""
    import warnings

    from ..generate import check_options, encode_prompt, stream
    from ..runs.checkpoint import load_run

    check_options(
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
    )  # bad flags fail before the model loads
    if not run.is_dir():
        raise CLIError(f"no run directory at {run}; train one with: tokvec train --out {run}")
    where = resolve_device_flag(device, "generate", announce=False)
    model, tok, _ = load_run(run, device=where)
    announce_device(device, where, "generate")
    options = dict(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        stop=[s.replace("\\n", "\n").replace("\\t", "\t") for s in stop] if stop else None,
        seed=seed,
        use_cache=cache,
    )

    def complete(text: str) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            encode_prompt(tok, text)  # unknown characters: <unk>, with a warning shown once here
        for w in caught:
            err.print(f"tokvec: warning: {w.message}", markup=False, soft_wrap=True)
        sys.stdout.write(text)
        sys.stdout.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for piece in stream(model, tok, text, max_new_tokens, **options):
                sys.stdout.write(piece)
                sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()

    if not interactive:
        complete(prompt)
        return
    err.print(
        f"tokvec generate: {run} ({model.num_parameters():,} parameters, context "
        f"{model.config.context_length} tokens). Type a prompt; an empty line or Ctrl-D ends.",
        markup=False,
        soft_wrap=True,
    )
    while True:
        try:
            text = input("> ")
        except (EOFError, KeyboardInterrupt):
            sys.stdout.write("\n")
            return
        if not text:
            return
        try:
            complete(text)
        except KeyboardInterrupt:  # stop this answer, keep the loop
            sys.stdout.write("\n")
