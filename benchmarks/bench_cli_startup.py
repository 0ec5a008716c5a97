"""Start-up time of the `tokvec` command: `tokvec --help` against `python -c pass`, in one run.

    python benchmarks/bench_cli_startup.py [--rounds 15]

Both sides are fresh interpreters started the same way (the venv's python); they alternate, round
after round, so load on a shared machine falls on both. Reported: the median wall time of each, the
ratio (target: --help <= 3x a bare interpreter), `tokvec --version`, and importing the CLI
framework alone (typer + rich) for scale: the entry point (tokvec/__main__.py) answers `--help` and
`--version` without it, and without torch, numpy or matplotlib (tests/test_cli_startup.py checks
both), so what is left is the interpreter's start and tokvec's package root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name

SCRIPT = Path(sys.executable).with_name("tokvec")  # the installed console script, as a user runs it
TOKVEC = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tokvec"]
SIDES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    # the floor this CLI framework sets: what `--help` costs before tokvec itself runs
    "python -c 'import typer, rich.console'": [sys.executable, "-c", "import typer, rich.console"],
    "tokvec --help": [*TOKVEC, "--help"],
    "tokvec --version": [*TOKVEC, "--version"],
    # the typer app's own --help: what the entry point's fast path saves (and what every command pays)
    "typer app --help": [sys.executable, "-c", "from tokvec.cli import main; main(['--help'])"],
}


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in SIDES}
    for cmd in SIDES.values():  # warm the page cache once, untimed
        wall(cmd)
    for _ in range(args.rounds):
        for name, cmd in SIDES.items():
            times[name].append(wall(cmd))
    base = statistics.median(times["python -c pass"])
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{args.rounds} interleaved rounds, median wall time"
    )
    print("| command | median (ms) | vs python -c pass |")
    print("| --- | ---: | ---: |")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| `{name}` | {m * 1000:.0f} | {m / base:.2f}x |")


if __name__ == "__main__":
    main()
