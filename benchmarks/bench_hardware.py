"""Training-step benchmark at nanoGPT's CPU config: tokvec's GPT against a plain nanoGPT-style model
of the same shape, what removing the per-step host syncs gains, and bf16 autocast against fp32.

nanoGPT's CPU config (README, "I only have a macbook"): 4 layers, 4 heads, d_model 128, context 64,
batch 12, dropout 0, no biases. Every contender runs the same step on the same batches
(character-level tiny Shakespeare windows, drawn once): forward with targets, backward, gradient
clipping at 1.0, fused AdamW, zero_grad; timed in interleaved rounds so all see the same machine load.

- ``nanoGPT-style``: nanoGPT's model.py written out, the reference of benchmarks/parity_nanogpt.py
  (fused qkv Linear, F.scaled_dot_product_attention with is_causal, exact GELU, its LayerNorm, learned
  positions, tied head, its Dropout modules at p = 0); its loop reads the loss back every
  ``log_interval`` (10) steps, as nanoGPT does.
- ``tokvec, checks + sync every step``: the loop tokvec had before: the ids and targets range-checked on
  every forward (two reductions read back to the host) and ``float(loss)`` after every step.
- ``tokvec``: the loop tokvec has now: batches from a token file checked once (``checked=True``), the
  loss read back every 10 steps.
- ``tokvec, bf16 autocast``: the same, under ``torch.autocast("cpu", torch.bfloat16)``.

    python benchmarks/bench_hardware.py                # ~3 min on 1 thread
    python benchmarks/bench_hardware.py --rounds 8 --steps 50

Needs ../shared/data/tinyshakespeare.txt next to the repository.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tokvec.data.batches import batch_generator, random_batch  # noqa: E402
from tokvec.device import describe_environment  # noqa: E402
from tokvec.model import GPT, ModelConfig  # noqa: E402
from tokvec.tokenizers import CharTokenizer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parity_nanogpt import RefConfig, RefGPT  # noqa: E402  (the one nanoGPT reference of the benchmarks)

DATA = ROOT / ".." / "shared" / "data" / "tinyshakespeare.txt"
LAYERS, HEADS, D, CONTEXT, BATCH = 4, 4, 128, 64, 12
LOG_INTERVAL = 10


# -- the contenders --------------------------------------------------------------------------------
def contender(model: nn.Module, batches, *, checked: bool | None, sync_every: int, autocast=nullcontext):
    """A step function: forward, backward, clip, fused AdamW; the loss read back every ``sync_every`` steps.
    ``checked=None``: a model without that parameter (the nanoGPT-style one)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=True)
    kwargs = {} if checked is None else {"checked": checked}
    pending = []

    def step(i: int) -> None:
        x, y = batches[i % len(batches)]
        with autocast():
            _, loss = model(x, y, **kwargs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        pending.append(loss.detach())
        if len(pending) >= sync_every:
            values = torch.stack(pending).tolist()
            pending.clear()
            assert all(math.isfinite(v) for v in values)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per contender per round")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not DATA.is_file():
        print(f"skipped: {DATA.resolve()} not found (the benchmark corpus lives next to the repository)")
        return
    text = DATA.read_text(encoding="utf-8")
    tok = CharTokenizer.train([text])
    import numpy as np

    ids = np.asarray(tok.encode(text), dtype=np.int64)
    batches = [
        random_batch((ids,), batch_size=BATCH, context=CONTEXT, generator=batch_generator(0, i)) for i in range(64)
    ]
    cfg = dict(
        vocab_size=tok.vocab_size,
        d_model=D,
        n_layers=LAYERS,
        n_heads=HEADS,
        context_length=CONTEXT,
        dropout=0.0,
        bias=False,
    )
    nano = RefConfig(block_size=CONTEXT, vocab_size=tok.vocab_size, n_layer=LAYERS, n_head=HEADS, n_embd=D)
    torch.manual_seed(0)
    steps = {
        "nanoGPT-style model": contender(RefGPT(nano), batches, checked=None, sync_every=LOG_INTERVAL),
        "tokvec, checks + sync every step (before)": contender(
            GPT(ModelConfig(**cfg)), batches, checked=False, sync_every=1
        ),
        "tokvec (now)": contender(GPT(ModelConfig(**cfg)), batches, checked=True, sync_every=LOG_INTERVAL),
        "tokvec, bf16 autocast": contender(
            GPT(ModelConfig(**cfg)),
            batches,
            checked=True,
            sync_every=LOG_INTERVAL,
            autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        ),
    }
    for step in steps.values():  # warm up
        for i in range(5):
            step(i)
    seconds = {name: 0.0 for name in steps}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))  # interleaved, alternating order
        for name in order:
            t0 = time.perf_counter()
            for i in range(args.steps):
                steps[name](r * args.steps + i)
            seconds[name] += time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    env = describe_environment()
    from _machine import cpu_name

    total = args.rounds * args.steps
    rate = {name: total / s for name, s in seconds.items()}
    peer, before = rate["nanoGPT-style model"], rate["tokvec, checks + sync every step (before)"]
    print(
        f"machine: {cpu_name()}, torch {torch.__version__}, {args.threads} thread(s), CPU flags "
        f"{', '.join(env['cpu_flags']) or 'none'}; load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print(
        f"config: {LAYERS} layers, {HEADS} heads, d_model {D}, context {CONTEXT}, batch {BATCH}, no biases; "
        f"{args.rounds} rounds x {args.steps} steps each, interleaved"
    )
    print("| contender | steps/s | vs nanoGPT-style | vs tokvec before |")
    print("| --- | ---: | ---: | ---: |")
    for name in steps:
        print(f"| {name} | {rate[name]:.1f} | {rate[name] / peer:.3f}x | {rate[name] / before:.3f}x |")


if __name__ == "__main__":
    main()
