"""The model's speed, measured side by side in one run, as ratios (issue 5, items 2-4).

    python benchmarks/bench_model.py [--new-tokens 500] [--context 512] [--threads N] [--repeats 3]

1. Generation: tokvec ``GPT.generate`` (KV cache) vs Hugging Face ``transformers``
   ``GPT2LMHeadModel.generate`` (its own KV cache), same sizes, the SAME weights (copied across),
   greedy, batch 1: new tokens/s of each, the ratio (target >= 1.5), and whether the two greedy
   outputs agree token for token (a check that the two models compute the same function).
2. KV cache vs no cache: ``generate(use_cache=True)`` vs ``use_cache=False``, 500 new tokens filling
   a context of 512: the speed ratio (target >= 10) and identical greedy outputs.
3. Machine limit: achieved FLOP/s of a forward + backward pass (FLOPs from
   ``GPT.flops_per_token``, 6N + 12LdT) as a fraction of the ``torch.mm`` peak measured in the same
   run on the same threads (target >= 0.75).

The models: GPT-2 shaped with learned positions, vocab 65 (the character vocabulary of tiny
Shakespeare), context 512; "tiny" = nanoGPT's CPU sizes (d_model 128, 4 layers, 4 heads, the sizes of
the training benchmark), "small" = d_model 384, 6 layers, 6 heads (parts 2 and 3 use "small"). Timings interleave the contenders and keep
the best of ``--repeats`` runs (the machine is shared; the best run is the least disturbed one); with
one thread the clock is the process's CPU time, so time spent waiting for a core is not counted.
Needs ``pip install -e '.[bench]'`` (transformers); without it part 1 is skipped with a message.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from _machine import cpu_name  # noqa: E402  (benchmarks/_machine.py)
from tokvec import GPT, ModelConfig

VOCAB = 65
SIZES = {"tiny": (128, 4, 4), "small": (384, 6, 6)}  # (d_model, layers, heads) of the presets


def make_model(context: int, size: str = "small", seed: int = 0) -> GPT:
    d, layers, heads = SIZES[size]
    torch.manual_seed(seed)
    model = GPT(
        ModelConfig(
            vocab_size=VOCAB, context_length=context, d_model=d, n_layers=layers, n_heads=heads, positional="learned"
        )
    ).eval()
    with torch.no_grad():  # a random model's logits are near-ties; widen them so greedy choices are clear
        model.embed.token.weight.mul_(8)
    return model


def to_hf(model: GPT):
    """The same network as a transformers GPT2LMHeadModel (Conv1D weights are stored transposed)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=c.vocab_size,
            n_positions=c.context_length,
            n_embd=c.d_model,
            n_layer=c.n_layers,
            n_head=c.n_heads,
            activation_function="gelu",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            layer_norm_epsilon=1e-5,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
        )
    ).eval()
    sd = {
        "transformer.wte.weight": model.embed.token.weight,
        "transformer.wpe.weight": model.embed.positional.weight,
        "transformer.ln_f.weight": model.norm.weight,
        "transformer.ln_f.bias": model.norm.bias,
    }
    for i, b in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        sd.update(
            {
                p + "ln_1.weight": b.norm1.weight,
                p + "ln_1.bias": b.norm1.bias,
                p + "ln_2.weight": b.norm2.weight,
                p + "ln_2.bias": b.norm2.bias,
                p + "attn.c_attn.weight": b.attn.qkv.weight.T,
                p + "attn.c_attn.bias": b.attn.qkv.bias,
                p + "attn.c_proj.weight": b.attn.proj.weight.T,
                p + "attn.c_proj.bias": b.attn.proj.bias,
                p + "mlp.c_fc.weight": b.mlp.fc.weight.T,
                p + "mlp.c_fc.bias": b.mlp.fc.bias,
                p + "mlp.c_proj.weight": b.mlp.proj.weight.T,
                p + "mlp.c_proj.bias": b.mlp.proj.bias,
            }
        )
    hf.load_state_dict({k: v.detach().contiguous() for k, v in sd.items()}, strict=False)
    hf.tie_weights()
    return hf


CLOCK = {"fn": time.perf_counter}


def timed(fn):
    clock = CLOCK["fn"]
    t0 = clock()
    result = fn()
    return clock() - t0, result


def best(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Interleave the contenders ``repeats`` times; the best time and the last result of each."""
    times = {k: float("inf") for k in fns}
    results = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            t, results[name] = timed(fn)
            times[name] = min(times[name], t)
    return times, results


def agree(a: torch.Tensor, b: torch.Tensor) -> str:
    a, b = a.flatten().tolist(), b.flatten().tolist()
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return "identical" if a == b else f"first {same} of {len(a)} tokens agree"


def bench_generation(size: str, context: int, prompt: torch.Tensor, new: int, repeats: int) -> list[tuple]:
    rows = []
    model = make_model(context, size)
    try:
        hf = to_hf(model)
    except ImportError:
        print("part 1 skipped: transformers is not installed (pip install -e '.[bench]')")
        return rows
    with torch.no_grad():
        torch.testing.assert_close(hf(prompt).logits, model(prompt)[0], rtol=1e-4, atol=1e-4)  # same function
    fns = {
        "tokvec": lambda: model.generate(prompt, new, temperature=0),
        "hf": lambda: hf.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True),
    }
    times, out = best(fns, repeats)
    d, layers, heads = SIZES[size]
    rows.append(
        (
            f"{size} (d {d}, {layers} layers): generate vs HF (new tokens/s)",
            f"{new / times['tokvec']:,.0f}",
            f"{new / times['hf']:,.0f}",
            f"{times['hf'] / times['tokvec']:.2f}x",
            ">= 1.5x",
            agree(out["tokvec"], out["hf"]),
        )
    )
    return rows


def bench_cache(model: GPT, prompt: torch.Tensor, new: int, repeats: int) -> list[tuple]:
    fns = {
        "cache": lambda: model.generate(prompt, new, temperature=0, use_cache=True),
        "no cache": lambda: model.generate(prompt, new, temperature=0, use_cache=False),
    }
    times, out = best(fns, repeats)
    return [
        (
            f"small: KV cache vs no cache, context {model.config.context_length} (new tokens/s)",
            f"{new / times['cache']:,.0f}",
            f"{new / times['no cache']:,.0f}",
            f"{times['no cache'] / times['cache']:.1f}x",
            ">= 10x",
            agree(out["cache"], out["no cache"]),
        )
    ]


def mm_peak(repeats: int) -> tuple[float, int]:
    """Best fp32 torch.mm FLOP/s over a few square sizes (the machine's practical peak)."""
    best_rate, best_n = 0.0, 0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up
        reps = max(1, int(2e9 / (2 * n**3)))
        for _ in range(repeats):
            t, _ = timed(lambda: [torch.mm(a, b) for _ in range(reps)])
            rate = 2 * n**3 * reps / t
            if rate > best_rate:
                best_rate, best_n = rate, n
    return best_rate, best_n


def bench_flops(context: int, batch: int, seq: int, repeats: int) -> list[tuple]:
    model = make_model(context, "small").train()
    ids = torch.randint(0, VOCAB, (batch, seq))

    def step():
        model.zero_grad(set_to_none=True)
        _, loss = model(ids, ids)
        loss.backward()

    step()  # warm-up
    _, n = mm_peak(1)  # the square size where torch.mm is fastest here
    a, b = torch.randn(n, n), torch.randn(n, n)
    reps = max(1, int(2e9 / (2 * n**3)))
    peak, t = 0.0, float("inf")
    for _ in range(repeats):  # interleaved: a noisy neighbour slows both alike; best of each
        mm_time, _ = timed(lambda: [torch.mm(a, b) for _ in range(reps)])
        peak = max(peak, 2 * n**3 * reps / mm_time)
        t = min(t, timed(step)[0])
    achieved = model.flops_per_token(seq) * batch * seq / t
    return [
        (
            f"small: forward+backward, batch {batch} x {seq} (GFLOP/s)",
            f"{achieved / 1e9:,.1f}",
            f"{peak / 1e9:,.1f} (torch.mm {n}x{n})",
            f"{achieved / peak:.0%}",
            ">= 75%",
            f"{model.flops_per_token(seq) / 1e6:.1f} MFLOP/token",
        )
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=500)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--prompt-tokens", type=int, default=12)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--skip", nargs="*", default=[], choices=["hf", "cache", "flops"])
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu: process CPU time (default with 1 thread: time spent waiting for a core shared "
        "with other jobs is not counted); wall: elapsed time (default with more threads)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    CLOCK["fn"] = time.process_time if clock == "cpu" else time.perf_counter
    print(
        f"{time.strftime('%Y-%m-%d', time.gmtime())}  {cpu_name()} ({os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f})  threads={args.threads}  clock={clock}  torch {torch.__version__}"
    )
    prompt = torch.randint(0, VOCAB, (1, args.prompt_tokens), generator=torch.Generator().manual_seed(1))
    for size in SIZES:
        m = make_model(args.context, size)
        print(
            f"{size}: d_model {m.config.d_model}, {m.config.n_layers} layers, {m.config.n_heads} heads, vocab {VOCAB}, "
            f"context {args.context}, {m.num_parameters():,} parameters"
        )
    print(f"generation: prompt {args.prompt_tokens} tokens + {args.new_tokens} new, greedy, batch 1")
    rows = []
    if "hf" not in args.skip:
        for size in SIZES:
            rows += bench_generation(size, args.context, prompt, args.new_tokens, args.repeats)
    if "cache" not in args.skip:
        rows += bench_cache(make_model(args.context, "small"), prompt, args.new_tokens, args.repeats)
    if "flops" not in args.skip:
        rows += bench_flops(args.context, args.batch, args.seq, args.repeats)
    header = ("measure", "tokvec", "peer", "ratio", "target", "check")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
