"""1 -> 2 process scaling of `tokvec train` on this machine's CPUs (DDP over gloo), in one run.

    python benchmarks/bench_distributed.py [--steps 60]

Both runs train the same model on the same global batch (12 windows per step): one process with
2 torch threads, then `torchrun --nproc_per_node=2` with 1 thread per process and 6 windows per rank.
Reported: training tokens/s of each and the ratio. On a 2-core machine DDP cannot win much: the two
processes share the cores one process already used, and gloo all-reduces the gradients over TCP.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"


def run(cmd: list[str], env: dict) -> float:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return float(re.search(r"done: step \d+ .*?([\d,]+) tok/s", r.stdout).group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    if not DATA.is_file():
        print(f"skipped: {DATA} not found (the benchmark needs ../shared/data next to the repo)")
        return
    common = [
        "train",
        "--corpus",
        str(DATA),
        "--preset",
        "tiny",
        "--max-steps",
        str(args.steps),
        "--eval-interval",
        str(args.steps),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ}
        one = run(
            [sys.executable, "-m", "tokvec", *common, "--batch-size", "12", "--threads", "2", "--out", f"{tmp}/one"],
            env,
        )
        two = run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "tokvec",
                *common,
                "--batch-size",
                "6",
                "--threads",
                "1",
                "--out",
                f"{tmp}/two",
            ],
            {**env, "OMP_NUM_THREADS": "1"},
        )
    print(
        f"# {time.strftime('%Y-%m-%d')}  {os.cpu_count()} cores  tiny preset, tinyshakespeare, "
        f"{args.steps} steps, global batch 12 x 64 tokens"
    )
    print("| processes | threads each | tokens/s | vs 1 process |")
    print("|---|---|---|---|")
    print(f"| 1 | 2 | {one:,.0f} | 1.00x |")
    print(f"| 2 (DDP, gloo) | 1 | {two:,.0f} | {two / one:.2f}x |")
    print(json.dumps({"one": one, "two": two}))


if __name__ == "__main__":
    main()
