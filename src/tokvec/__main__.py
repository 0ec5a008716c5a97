"""The ``tokvec`` command's entry point: the console script, ``python -m tokvec`` and ``torchrun -m tokvec``.

``tokvec``, ``tokvec --help`` / ``-h`` and ``tokvec --version`` are answered here, from the standard
library alone: importing anything in ``tokvec.cli`` imports typer and rich, which cost about eight times
a bare interpreter's start (docs/benchmarks.md). Every other command line goes to ``tokvec.cli.main``.
The help below mirrors what the typer app registers; tests/test_cli_startup.py fails when the two differ
(a command added, renamed or reworded without updating this page).
"""

from __future__ import annotations

import sys

DESCRIPTION = "Text -> token ids -> the vectors a Transformer reads, and on to a language model."

# (flags, help) of the root command, as `tokvec.cli.app` declares them
OPTIONS = (
    ("--version", "Print the version and exit."),
    ("-h, --help", "Show this message and exit."),
)

# (name, first paragraph of its help), in the order the app registers them
COMMANDS = (
    ("embed", "Show text -> pieces -> ids -> (batch_size, seq_length, d_model) vectors, stage by stage."),
    ("tokenize", "Show how text splits: pieces (bytes shown readably), ids, and tokens per character."),
    ("encode", "Stream a corpus into a flat token file (uint16 or uint32 ids) + JSON sidecar, atomically."),
    ("train", "Train a GPT language model on a corpus; checkpoints, tokenizer and metrics go to --out."),
    (
        "import",
        "Import a GPT-2, Llama, Mistral or Qwen2 checkpoint as a tokvec run (generate, plot, trace, "
        "train --init-from).",
    ),
    (
        "export",
        "Export a run as a directory transformers loads: AutoModelForCausalLM / AutoTokenizer.from_pretrained(OUT).",
    ),
    ("generate", "Sample text from a trained run; the text streams as it is produced."),
    (
        "neighbors",
        "Nearest tokens to TOKEN by cosine similarity of their embedding rows (or of pretrained word vectors).",
    ),
    ("trace", "Follow TEXT: text -> pieces -> ids -> embedding rows -> +PE, with the shape at each stage."),
    ("analogy", "Words nearest to A - B + C (king man woman -> queen: B is to A as C is to ?)."),
    ("report", "One self-contained HTML page: config, parameters, tokenizer stats, losses, a sample and the plots."),
    ("serve", "A live explorer in the browser: tokens, vectors, attention, next-token odds, generation."),
    ("env", "Versions, devices, threads, the CPU flags that matter, and what auto picks for device and precision."),
)

# command groups: `tokvec GROUP --help` lists their commands
GROUPS = (
    ("tokenizer", "Train and inspect tokenizers."),
    ("positional", "Positional encodings: compare schemes."),
    ("classify", "Sequence classification on the same embeddings and blocks (CSV of text,label)."),
    ("plot", "Draw a stage as PNG (or SVG when --out ends in .svg)."),
)


def _wrap(text: str, width: int) -> list[str]:
    """``text`` cut at spaces into lines of at most ``width`` characters (a longer word gets a line of its
    own). Not textwrap: it imports re, a fifth of a bare interpreter's start."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def _terminal_width() -> int:
    """Columns to wrap the help to: $COLUMNS, else the terminal's, else 80; at most 100."""
    import os

    try:
        columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(sys.stdout.fileno()).columns
    except (ValueError, OSError, AttributeError):
        columns = 80
    return max(40, min(columns, 100))


def help_text(width: int = 80) -> str:
    """The page ``tokvec --help`` prints: usage, description, options, commands and groups, each help
    wrapped to ``width`` columns beside its name."""

    def table(rows) -> list[str]:
        left = max(len(name) for name, _ in rows) + 4
        lines = []
        for name, text in rows:
            first, *rest = _wrap(text, max(width - left, 30))
            lines.append(f"  {name:<{left - 2}}{first}")
            lines.extend(" " * left + part for part in rest)
        return lines

    return "\n".join(
        [
            "Usage: tokvec [OPTIONS] COMMAND [ARGS]...",
            "",
            *_wrap(DESCRIPTION, width),
            "",
            "Options:",
            *table(OPTIONS),
            "",
            "Commands:",
            *table(COMMANDS),
            "",
            "Command groups (`tokvec GROUP --help` lists their commands):",
            *table(GROUPS),
            "",
            "`tokvec COMMAND --help` shows a command's options.",
        ]
    )


def _say(text: str) -> None:
    """Print ``text`` and exit 0; a reader that stops early (``tokvec --help | head``) is no error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:  # Python's recipe: point stdout at devnull so the flush at exit is quiet
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Run ``tokvec ARGV...``; exits with the command's status (0, 2 for a user error)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args in ([], ["--help"], ["-h"]):
        _say(help_text(_terminal_width()))
    if args == ["--version"]:
        from ._version import version

        _say(f"tokvec {version()}")
    from .cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
