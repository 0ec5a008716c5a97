"""InputEmbedding forward vs a bare nn.Embedding lookup, measured side by side in one run.

    python benchmarks/bench_input_embedding.py [--repeats 30]

Three contenders on the same ids, interleaved round-robin so machine noise hits all alike:
- lookup:     nn.Embedding(ids)                       (the floor: one (B, T, d) output)
- tutorial:   nn.Embedding(ids) + pe[:T]              (the classic tutorial: a second (B, T, d) output)
- tokvec:     InputEmbedding(positional="sinusoidal", dropout=0) (checks ids, adds the PE in place)
Reported: median time of each, and the ratios tokvec/lookup (target <= 1.15) and tutorial/lookup.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from _machine import cpu_name  # noqa: E402  (benchmarks/_machine.py)
from tokvec import InputEmbedding
from tokvec.positional import sinusoidal_table

VOCAB = 50257


def _time(fn, ids) -> float:
    t0 = time.perf_counter()
    fn(ids)
    return time.perf_counter() - t0


def bench(batch: int, seq: int, d: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (batch, seq))
    ours = InputEmbedding(vocab_size=VOCAB, d_model=d, positional="sinusoidal", max_len=seq, dropout=0.0)
    bare = nn.Embedding(VOCAB, d)
    bare.weight.data.copy_(ours.token.weight.data)
    pe = sinusoidal_table(seq, d)
    contenders = {
        "lookup": bare,
        "tutorial": lambda x: bare(x) + pe[: x.shape[1]],
        "tokvec": ours,
    }
    times: dict[str, list[float]] = {k: [] for k in contenders}
    with torch.no_grad():
        for fn in contenders.values():  # warm-up
            fn(ids)
        for _ in range(repeats):
            for name, fn in contenders.items():
                times[name].append(_time(fn, ids))
        assert torch.allclose(contenders["tutorial"](ids), ours(ids), atol=1e-6)  # same numbers
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "B": batch,
        "T": seq,
        "d": d,
        **{f"{k}_ms": 1e3 * v for k, v in med.items()},
        "tokvec/lookup": med["tokvec"] / med["lookup"],
        "tutorial/lookup": med["tutorial"] / med["lookup"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}  torch {torch.__version__}  threads {torch.get_num_threads()}  {cpu_name()}")
    print("| B | T | d | lookup ms | tutorial ms | tokvec ms | tokvec / lookup | tutorial / lookup |")
    print("|---|---|---|---|---|---|---|---|")
    for seq in (256, 1024):
        for d in (64, 512, 768):
            r = bench(32, seq, d, args.repeats)
            print(
                f"| {r['B']} | {r['T']} | {r['d']} | {r['lookup_ms']:.2f} | {r['tutorial_ms']:.2f} | "
                f"{r['tokvec_ms']:.2f} | {r['tokvec/lookup']:.2f}x | {r['tutorial/lookup']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
