import io
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

SCRIPT = Path(sys.executable).with_name("tokvec")  # the installed console script


@pytest.fixture
def one_thread():
    """Tiny matmuls on a shared 2-core machine run ~15x faster on one thread than fighting for two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def error_says():
    """``with error_says(TokenIdError, "70000", "vocab_size 65536"): ...`` - the block raises that error (or
    warns that warning) and its message carries each fact: the bad value, the limit, the fix, in any
    wording. A fact is a substring, or a compiled regex for a value that varies (a path, a hash).
    Yields pytest's ExceptionInfo (``.value`` is the error)."""

    @contextmanager
    def check(kind, *facts, warns: bool = False):
        if warns:
            with pytest.warns(kind) as record:
                yield record
            messages = [str(w.message) for w in record if issubclass(w.category, kind)]
        else:
            with pytest.raises(kind) as info:
                yield info
            messages = [str(info.value)]
        for message in messages:
            missing = [
                f for f in facts if (f.search(message) is None if isinstance(f, re.Pattern) else f not in message)
            ]
            if not missing:
                return
        raise AssertionError(f"{kind.__name__} {messages[-1]!r} does not say {missing}")

    return check


@dataclass
class CliResult:
    code: int  # the exit status: 0 ok, 2 a user error (one line on stderr)
    out: str
    err: str

    def __iter__(self):  # code, out, err = cli(...)
        return iter((self.code, self.out, self.err))


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run ``tokvec ARGS...`` and return its CliResult: ``cli("embed", "你好").out``.

    In this process through the entry point ``tokvec.__main__.main`` (fast; ``stdin=`` feeds standard input), or with
    ``subprocess=True`` as a user runs it: the installed console script in a fresh interpreter.
    """

    def run(*args, stdin: str | None = None, subprocess: bool = False, cwd=None) -> CliResult:
        argv = [str(a) for a in args]
        if subprocess:
            return _run_script(argv, stdin, cwd)
        from tokvec.__main__ import main  # the entry point, as the console script runs it

        capsys.readouterr()  # output printed before this call is not this command's
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = 0
        try:
            main(argv)
        except SystemExit as e:
            code = e.code or 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def _run_script(argv: list[str], stdin: str | None, cwd) -> CliResult:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tokvec"]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        cmd + argv, input=stdin, capture_output=True, text=True, encoding="utf-8", cwd=cwd, env=env, timeout=300
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
