"""`tokvec --help` and `--version` start fast: they import no torch, numpy or matplotlib."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "numpy", "matplotlib")

PROBE = """
import json, sys
import tokvec.cli
from tokvec.cli import main
try:
    main([{arg!r}])
except SystemExit as e:
    code = e.code
print(json.dumps({{"code": code, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("arg", ["--help", "--version"])
def test_help_and_version_import_no_torch(arg):
    # a fresh interpreter: this test process has torch loaded already
    proc = subprocess.run([sys.executable, "-c", PROBE.format(arg=arg, heavy=HEAVY)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}


@pytest.mark.slow
def test_import_tokvec_is_lazy_until_a_name_is_used():
    code = ("import sys, tokvec; before = 'torch' in sys.modules; tokvec.GPT; "
            "print(before, 'torch' in sys.modules, tokvec.__version__ != '')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "True", "True"], proc.stderr
