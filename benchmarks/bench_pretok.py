"""The C pre-tokeniser (tokenizers/_native/pretok.c) against its reference, ``regex.findall``.

    python benchmarks/bench_pretok.py [--repeat 7]

For each corpus and named pattern (gpt2, cl100k, o200k): MB/s (UTF-8 bytes) of
``regex.findall(PATTERNS[name], text)``, of the extension's ``split`` (the same list of str) and of
``count_pieces`` (the C loop alone, no Python objects: what the BPE trainer pays). The three run
interleaved, best of --repeat, on one thread. Both sides must give the same pieces (checked first).
Corpora: ../shared/data/tinyshakespeare.txt (English) and tang-poems.txt (classical Chinese).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
# beside the repository; from a git worktree in ../wt/NAME, two levels up
DATA_DIRS = [ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data"]
CORPORA = {"tinyshakespeare": "tinyshakespeare.txt", "tang-poems": "tang-poems.txt"}


def best_of(*fns, repeat: int) -> list[float]:
    """Best time of each function over ``repeat`` rounds, the functions interleaved within a round."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def find_corpus(filename: str) -> Path | None:
    return next((d / filename for d in DATA_DIRS if (d / filename).is_file()), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    import regex

    from _machine import cpu_name
    from tokvec.tokenizers import _bpe_native as native
    from tokvec.tokenizers.patterns import PATTERNS

    codes = {"gpt2": native.GPT2, "cl100k": native.CL100K, "o200k": native.O200K}
    load = os.getloadavg()[0]
    rows = []
    for corpus, filename in CORPORA.items():
        path = find_corpus(filename)
        if path is None:
            print(f"skipping {corpus}: {filename} not found (expected beside the repository in ../shared/data)")
            continue
        text = path.read_text(encoding="utf-8")
        mb = len(text.encode("utf-8")) / 1e6
        for name, code in codes.items():
            compiled = regex.compile(PATTERNS[name])
            pieces = native.split(text, code)
            if pieces != compiled.findall(text):
                raise SystemExit(f"{corpus}/{name}: the C pieces differ from regex.findall's")
            t_regex, t_split, t_count = best_of(
                lambda: compiled.findall(text),
                lambda: native.split(text, code),
                lambda: native.count_pieces(text, code),
                repeat=args.repeat,
            )
            rows.append((corpus, f"{mb:.2f}", name, len(pieces), mb / t_regex, mb / t_split, mb / t_count, t_regex))
            print(f"{corpus} {name}: regex {mb / t_regex:.1f} MB/s, split {mb / t_split:.1f}, count {mb / t_count:.1f}")

    load_after = os.getloadavg()[0]
    print()
    print(
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu_name()}, {os.cpu_count()} CPUs, "
        f"Python {sys.version_info.major}.{sys.version_info.minor}, regex {regex.__version__}, one thread, "
        f"interleaved, best of {args.repeat}, load average {load:.1f} before / {load_after:.1f} after:"
    )
    print()
    print("| corpus | MB | pattern | pieces | regex.findall MB/s | C split MB/s | C count_pieces MB/s |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for corpus, mb, name, n, r, s, c, t_regex in rows:
        print(f"| {corpus} | {mb} | {name} | {n:,} | {r:.1f} | {s:.1f} ({s / r:.1f}x) | {c:.0f} ({c / r:.0f}x) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
