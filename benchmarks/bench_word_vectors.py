"""Loading pretrained word vectors: tokvec's reader against gensim's KeyedVectors.load_word2vec_format.

    python benchmarks/bench_word_vectors.py [--words 400000] [--dim 300] [--format glove|word2vec|word2vec-binary]

A file of ``--words`` x ``--dim`` random vectors (GloVe text by default, the format of glove.6B.300d)
is generated in a temp dir (deleted afterwards). Each side loads it in its own child process, which
reports its load time and its peak RSS (VmHWM); a child that only imports the same modules gives
the interpreter's baseline. Targets (issue 14): tokvec's peak above its baseline <= 1.3x the table
(words x dim x 4 bytes); tokvec's load time <= 1.0x gensim's. gensim comes from the `bench` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
side, path, fmt, load = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "1"
if side == "tokvec":
    import torch, numpy
    from tokvec.tokenizers.word_vectors import read_word_vectors
else:
    from gensim.models import KeyedVectors
start = time.perf_counter()
shape = None
if load and side == "tokvec":
    wv = read_word_vectors(path, format=fmt)
    shape = list(wv.vectors.shape)
elif load:
    kv = KeyedVectors.load_word2vec_format(path, binary=fmt == "word2vec-binary", no_header=fmt == "glove")
    shape = list(kv.vectors.shape)
secs = time.perf_counter() - start
rss = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"secs": secs, "rss": rss, "shape": shape}))
"""


def generate(path: Path, n: int, d: int, fmt: str, seed: int = 0) -> None:
    """Random vectors, each number written as 9 characters (like GloVe's '-0.046033'), fast:
    rows are cut from a pool of formatted numbers with numpy, not formatted one by one."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 0.4, 4096).clip(-9.9, 9.9)
    pool = np.array([f"{x:.6f} " if x < 0 else f"{x:.7f} " for x in values], dtype="S10")  # 9 chars + space
    pool = np.frombuffer(pool.tobytes(), dtype=np.uint8).reshape(len(values), 10)
    with open(path, "wb") as f:
        if fmt != "glove":
            f.write(f"{n} {d}\n".encode())
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            idx = rng.integers(0, len(values), size=(m, d))
            if fmt == "word2vec-binary":
                vecs = values[idx].astype("<f4")
                f.write(b"".join(f"w{start + i} ".encode() + vecs[i].tobytes() + b"\n" for i in range(m)))
                continue
            body = pool[idx].reshape(m, d * 10)
            body[:, -1] = 10  # the last number's trailing space becomes the newline
            f.write(b"".join(f"w{start + i} ".encode() + body[i].tobytes() for i in range(m)))


def child(side: str, path: Path, fmt: str, load: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "src"), side, str(path), fmt, "1" if load else "0"],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"{side} child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--words", type=int, default=400_000)
    parser.add_argument("--dim", type=int, default=300)
    parser.add_argument("--format", default="glove", choices=["glove", "word2vec", "word2vec-binary"])
    parser.add_argument("--dir", default=None, help="where to write the generated file (default: a temp dir)")
    args = parser.parse_args()
    try:
        import gensim  # noqa: F401
    except ImportError:
        print("skipping: gensim is not installed (pip install -e '.[bench]')")
        return
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / f"vectors.{'bin' if args.format == 'word2vec-binary' else 'txt'}"
        start = time.perf_counter()
        generate(path, args.words, args.dim, args.format)
        print(
            f"generated {path.stat().st_size / 1e6:.0f} MB ({args.words:,} x {args.dim}, {args.format}) in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
        base_t, base_g = child("tokvec", path, args.format, False), child("gensim", path, args.format, False)
        t = child("tokvec", path, args.format, True)
        print(f"tokvec {t}", flush=True)
        g = child("gensim", path, args.format, True)
        print(f"gensim {g}", flush=True)
    table = args.words * args.dim * 4
    assert t["shape"] == g["shape"] == [args.words, args.dim], (t["shape"], g["shape"])
    from _machine import cpu_name

    print(
        f"\n{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores ({cpu_name()}), load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; one run each, children in turn\n"
    )
    print("| file | side | load time | peak RSS above its baseline | / table |\n| --- | --- | --- | --- | --- |")
    what = f"{args.words:,} x {args.dim} {args.format} ({table / 1e6:.0f} MB table)"
    for name, r, base in (("tokvec read_word_vectors", t, base_t), ("gensim load_word2vec_format", g, base_g)):
        extra = r["rss"] - base["rss"]
        print(f"| {what} | {name} | {r['secs']:.1f} s | {extra / 1e6:.0f} MB | {extra / table:.2f}x |")
    print(f"\ntokvec / gensim load time: {t['secs'] / g['secs']:.2f}x (target <= 1.0)")


if __name__ == "__main__":
    main()
