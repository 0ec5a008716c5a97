"""`tokvec`, `tokvec --help` and `--version` start fast: the entry point (tokvec/__main__.py) answers them
without the CLI framework (typer, rich) or torch, numpy, matplotlib; its help page says what the typer
app registers."""

import importlib.metadata
import inspect
import json
import subprocess
import sys

import pytest
import typer

from tokvec import __main__ as entry

HEAVY = ("torch", "numpy", "matplotlib")
FRAMEWORK = ("typer", "rich", "click")

PROBE = """
import json, sys
from {module} import main
try:
    main({argv!r})
except SystemExit as e:
    code = e.code
print(json.dumps({{"code": code, "loaded": [m for m in {watch!r} if m in sys.modules]}}))
"""


def _probe(module: str, argv: list[str], watch: tuple[str, ...]) -> dict:
    # a fresh interpreter: this test process has torch loaded already
    code = PROBE.format(module=module, argv=argv, watch=watch)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["--version"]])
def test_entry_point_answers_help_and_version_without_the_cli_framework(argv):
    assert _probe("tokvec.__main__", argv, HEAVY + FRAMEWORK) == {"code": 0, "loaded": []}


@pytest.mark.slow
@pytest.mark.parametrize("arg", ["--help", "--version"])
def test_the_typer_app_itself_imports_no_torch_for_help_and_version(arg):
    assert _probe("tokvec.cli", [arg], HEAVY) == {"code": 0, "loaded": []}


@pytest.mark.slow
def test_import_tokvec_is_lazy_until_a_name_is_used():
    code = (
        "import sys, tokvec; before = 'torch' in sys.modules; tokvec.GPT; "
        "print(before, 'torch' in sys.modules, tokvec.__version__ != '')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "True", "True"], proc.stderr


def _first_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


def test_fast_help_lists_what_the_typer_app_registers():
    from tokvec.cli import app

    root = typer.main.get_command(app)
    registered = [(name, root.commands[name]) for name in root.list_commands(typer.Context(root))]
    commands = [(n, _first_paragraph(c.help)) for n, c in registered if not hasattr(c, "list_commands")]
    groups = [(n, _first_paragraph(c.help)) for n, c in registered if hasattr(c, "list_commands")]
    assert list(entry.COMMANDS) == commands  # a command added, renamed or reworded: update tokvec/__main__.py
    assert list(entry.GROUPS) == groups
    assert entry.DESCRIPTION == _first_paragraph(root.help)
    options = {", ".join(sorted(p.opts + p.secondary_opts, key=len)): p.help for p in root.params}
    options["-h, --help"] = "Show this message and exit."  # click's help option, named by context_settings
    assert root.context_settings["help_option_names"] == ["-h", "--help"]
    assert dict(entry.OPTIONS) == options


@pytest.mark.parametrize("width", [60, 80, 100])
def test_fast_help_wraps_to_the_width_and_keeps_every_word(width):
    page = entry.help_text(width)
    longest_word = max(len(w) for _, text in entry.COMMANDS + entry.GROUPS for w in text.split())
    assert all(len(line) <= max(width, 16 + longest_word) for line in page.splitlines())
    flat = " ".join(page.split())
    for name, text in entry.COMMANDS + entry.GROUPS + entry.OPTIONS:
        assert f"{name} {text}" in flat
    assert flat.startswith("Usage: tokvec [OPTIONS] COMMAND [ARGS]...")


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"]])
def test_entry_point_prints_the_help_and_exits_0(argv, cli):
    code, out, err = cli(*argv)
    assert (code, err) == (0, "")
    assert out.startswith("Usage: tokvec") and all(name in out for name, _ in entry.COMMANDS + entry.GROUPS)


def test_version_is_the_installed_distributions(cli):
    code, out, _ = cli("--version")
    # pyproject reads the version from tokvec/_version.py: the installed metadata must agree with it
    assert (code, out) == (0, f"tokvec {importlib.metadata.version('tokvec')}\n")


def test_everything_else_goes_to_the_cli(cli):
    code, out, err = cli("--bogus")
    assert code == 2 and "--bogus" in err and err.startswith("tokvec: error:")
    code, out, _ = cli("tokenize", "--help")  # typer's own help page for a command
    assert code == 0 and "tokvec tokenize" in out
