"""Attention forward+backward cost of each positional scheme, relative to NoPE, in the same run.

    python benchmarks/bench_positional.py                 # B=8, T in {256, 1024}, d=256, 4 heads
    python benchmarks/bench_positional.py --lengths 256 --repeats 5

One CausalSelfAttention layer per scheme; each timed step is forward + backward of sum(y) with
respect to the input and every parameter. Schemes are timed round-robin (one step each per round),
so a noisy neighbour on a shared machine slows all of them alike, and with one thread (the
default) the clock is the process's CPU time, which other processes do not inflate. The table shows
the fastest step in milliseconds (the least disturbed one) and the ratio to ``none``. Targets (issue 4): rope <= 1.15x, alibi/t5 <= 1.3x,
relative (Shaw) <= 2x. The additive schemes (sinusoidal, learned) do nothing inside attention and
are not listed: their cost is one (b, s, d) addition in the embedding.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _machine import cpu_name  # noqa: E402  (benchmarks/_machine.py)
from tokvec.model import CausalSelfAttention  # noqa: E402
from tokvec.positional import build  # noqa: E402

# label -> (scheme, options)
SCHEMES = {
    "none": ("none", {}),
    "rope": ("rope", {}),
    "alibi": ("alibi", {}),
    "t5": ("t5", {}),
    "relative (keys)": ("relative", {"values": False}),
    "relative (keys+values)": ("relative", {}),
    "xl": ("xl", {}),
}
TARGETS = {"rope": 1.15, "alibi": 1.3, "t5": 1.3, "relative (keys)": 2.0, "relative (keys+values)": 2.0}


def step(layer: CausalSelfAttention, x: torch.Tensor, clock=time.process_time) -> float:
    start = clock()
    layer(x).sum().backward()
    elapsed = clock() - start
    layer.zero_grad(set_to_none=True)
    x.grad = None
    return elapsed


def run(batch: int, length: int, d_model: int, n_heads: int, repeats: int, clock) -> dict[str, float]:
    torch.manual_seed(0)
    layers = {}
    for label, (name, options) in SCHEMES.items():
        pos = build(name, d_model=d_model, n_heads=n_heads, head_dim=d_model // n_heads, max_len=length, **options)
        layers[label] = CausalSelfAttention(d_model, n_heads, positional=pos).train()
    x = torch.randn(batch, length, d_model, requires_grad=True)
    for layer in layers.values():  # warm up: allocator, kernels, memoised tables
        step(layer, x)
    times: dict[str, list[float]] = {label: [] for label in layers}
    for _ in range(repeats):
        for label, layer in layers.items():
            times[label].append(step(layer, x, clock))
    return {label: min(t) for label, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lengths", default="256,1024")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads; with more than 1 the clock becomes wall time"
    )
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="flush denormal floats to zero (ALiBi's steep slopes put many softmax terms there)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    lengths = [int(t) for t in args.lengths.split(",")]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}; "
        f"B={args.batch}, d={args.d_model}, heads={args.heads}, fastest of {args.repeats} fwd+bwd steps, "
        f"{'CPU' if clock is time.process_time else 'wall'} time, flush denormal {args.flush_denormal}"
    )
    results = {t: run(args.batch, t, args.d_model, args.heads, args.repeats, clock) for t in lengths}
    header = "| scheme | target | " + " | ".join(f"T={t} ms | T={t} x none" for t in lengths) + " |"
    print(header)
    print("|" + "---|" * (2 + 2 * len(lengths)))
    for label in SCHEMES:
        cells = []
        for t in lengths:
            ms, ratio = results[t][label] * 1e3, results[t][label] / results[t]["none"]
            cells += [f"{ms:.1f}", f"{ratio:.2f}x"]
        target = f"<= {TARGETS[label]:g}x" if label in TARGETS else ""
        print(f"| {label} | {target} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
