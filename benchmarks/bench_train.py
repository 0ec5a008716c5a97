"""Training benchmark, side by side in one run.

1. nanoGPT's CPU anchor: character-level tiny Shakespeare, 4 layers, 4 heads, d_model 128, context 64,
   batch 12, 2000 iterations, dropout 0, lr 1e-3 (warmup 100, cosine to 1e-4, beta2 0.99, weight decay
   0.1, clip 1.0, no biases, val = last 10%) -> nanoGPT reports val loss 1.88. Target: <= 1.88. Run
   on nanoGPT's model exactly (learned positions, LayerNorm, GELU) and, with the same recipe, on the
   choices it leaves open: rotary positions, then rotary + RMSNorm + SwiGLU.
2. Training tokens/s of tokvec's GPT against Hugging Face ``transformers``' ``GPT2LMHeadModel`` of the
   same sizes on the same batches with the same optimizer (fused AdamW), interleaved in rounds so both
   see the same machine load. Target: >= 1.2x. Also tokvec with bf16 autocast (does it help here?)
   and, with --compile, torch.compile; and achieved FLOP/s as a fraction of torch.mm's peak.

    python benchmarks/bench_train.py                 # everything (~10-20 min on 2 cores)
    python benchmarks/bench_train.py --skip-anchor   # throughput table only

Needs ../shared/data/tinyshakespeare.txt next to the repository and ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tokvec.corpus import corpus_ids  # noqa: E402
from tokvec.data.batches import batch_generator, random_batch, split_by_position  # noqa: E402
from tokvec.model import GPT, ModelConfig  # noqa: E402
from tokvec.runs.train import TrainConfig, train  # noqa: E402
from tokvec.tokenizers import CharTokenizer  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "tinyshakespeare.txt"
SIZES = dict(context_length=64, d_model=128, n_layers=4, n_heads=4, dropout=0.0)
BATCH = 12


def machine() -> str:
    from _machine import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def mm_peak(seconds: float = 1.0, n: int = 1024) -> float:
    """FLOP/s of fp32 torch.mm at n x n (the machine limit a training step is measured against)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


def make_peer(vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=vocab,
        n_positions=SIZES["context_length"],
        n_embd=SIZES["d_model"],
        n_layer=SIZES["n_layers"],
        n_head=SIZES["n_heads"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(cfg)
    model.config._attn_implementation = "sdpa"  # the same attention kernel tokvec uses
    return model


def throughput(ids, vocab: int, steps: int, rounds: int, compile_: bool) -> list[dict]:
    """Train each contender ``steps`` steps per round, ``rounds`` rounds interleaved; tokens/s each."""
    from contextlib import nullcontext

    split = split_by_position(ids, context=SIZES["context_length"], mode="tail")
    torch.manual_seed(0)
    ours = GPT(ModelConfig(vocab_size=vocab, **SIZES))  # biases on, like GPT-2: same parameter count as the peer
    contenders = {
        "tokvec GPT (fp32)": (ours, nullcontext, False),
        "tokvec GPT (bf16 autocast)": (
            GPT(ModelConfig(vocab_size=vocab, **SIZES)),
            lambda: torch.autocast("cpu", dtype=torch.bfloat16),
            False,
        ),
    }
    if compile_:
        contenders["tokvec GPT (torch.compile)"] = (GPT(ModelConfig(vocab_size=vocab, **SIZES)), nullcontext, True)
    contenders["HF GPT2LMHeadModel (fp32)"] = (make_peer(vocab), nullcontext, False)
    state = {}
    for name, (model, autocast, comp) in contenders.items():
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, fused=True)
        fwd = torch.compile(model) if comp else model
        peer = name.startswith("HF")

        def step(i, model=model, opt=opt, fwd=fwd, autocast=autocast, peer=peer):
            x, y = random_batch(
                split.train, batch_size=BATCH, context=SIZES["context_length"], generator=batch_generator(0, i)
            )
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = fwd(input_ids=x, labels=x).loss if peer else fwd(x, y)[1]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        for i in range(10):  # warm up (and compile)
            step(i)
        state[name] = {"step": step, "time": 0.0, "steps": 0, "model": model}
    for r in range(rounds):
        for name, s in state.items():
            t0 = time.perf_counter()
            for i in range(steps):
                s["step"](1000 + r * steps + i)
            s["time"] += time.perf_counter() - t0
            s["steps"] += steps
    flops_per_token = ours.flops_per_token()
    rows = []
    for name, s in state.items():
        rows.append(
            {
                "name": name,
                "tokens_per_s": s["steps"] * BATCH * SIZES["context_length"] / s["time"],
                "params": sum(p.numel() for p in s["model"].parameters()),
            }
        )
    peer = rows[-1]["tokens_per_s"]
    for row in rows:
        row["ratio"] = row["tokens_per_s"] / peer
        row["flops"] = row["tokens_per_s"] * flops_per_token
    return rows


def nanogpt_estimate(model, ids, iters: int = 20, seed: int = 0) -> float:
    """nanoGPT's ``estimate_loss`` on the val split: the mean loss of ``iters`` random batches of 12
    windows (its CPU command uses --eval_iters=20): a noisier estimate than the full val set."""
    split = split_by_position(ids, context=SIZES["context_length"], mode="tail")
    losses = []
    with torch.no_grad():
        for i in range(iters):
            x, y = random_batch(
                (split.val,), batch_size=BATCH, context=SIZES["context_length"], generator=batch_generator(seed, i)
            )
            losses.append(float(model(x, y)[1]))
    return sum(losses) / len(losses)


# The anchor's model variants: nanoGPT's exactly, then the choices its recipe leaves open.
VARIANTS = {
    "nanogpt": ("learned", {}),  # learned absolute positions, LayerNorm, GELU: nanoGPT's model
    "rope": ("rope", {}),  # rotary positions instead
    "llama": ("rope", {"norm": "rmsnorm", "activation": "swiglu"}),  # rotary + RMSNorm + SwiGLU
}


def anchor(iters: int, bf16: bool, seed: int, ids, variant: str = "nanogpt") -> dict:
    positional, options = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            corpus=str(DATA),
            tokenizer="char",
            preset="tiny",
            positional=positional,
            **SIZES,
            model_options={"bias": False, **options},
            batch_size=BATCH,
            max_steps=iters,
            lr=1e-3,
            min_lr=1e-4,
            warmup_steps=100,
            beta2=0.99,
            weight_decay=0.1,
            grad_clip=1.0,
            eval_interval=iters,
            eval_batches=200,
            val_split="tail",
            seed=seed,
            bf16=bf16,
            out=str(Path(out) / "run"),
        )
        t0 = time.perf_counter()
        result = train(config)
        seconds = time.perf_counter() - t0
        est = [nanogpt_estimate(result.model, ids, seed=s) for s in range(5)]
        return {
            "val_loss": result.val_loss,
            "train_loss": result.train_loss,
            "tokens_per_s": result.tokens_per_s,
            "seconds": seconds,
            "est": est,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000, help="anchor iterations (nanoGPT: 2000)")
    parser.add_argument("--steps", type=int, default=50, help="throughput steps per round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved throughput rounds")
    parser.add_argument("--skip-anchor", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337], help="anchor seeds (nanoGPT: 1337)")
    parser.add_argument("--anchor-bf16", action="store_true", help="also run the anchor with bf16 autocast")
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        help="anchor models: nanogpt (exactly nanoGPT's), rope (rotary positions), "
        "llama (rotary + RMSNorm + SwiGLU); the recipe is the same for all",
    )
    parser.add_argument("--compile", action="store_true", help="add a torch.compile contender")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine a second thread waits "
        "on the other users and halves throughput; pass 2 on an idle machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not DATA.is_file():
        print(f"skipped: {DATA.resolve()} not found (the benchmark corpus lives next to the repository)")
        return
    try:
        import transformers
    except ImportError:
        print("skipped: transformers is not installed; pip install -e '.[bench]'")
        return
    import transformers.utils.logging as hf_logging

    hf_logging.set_verbosity_error()  # its notes about GPT-2's token ids do not apply to a char vocabulary
    text = DATA.read_text(encoding="utf-8")
    tok = CharTokenizer.train([text])
    ids = corpus_ids(tok, text)
    print(f"machine: {machine()}; transformers {transformers.__version__}")
    print(f"corpus: tinyshakespeare, {len(ids):,} chars, vocab {tok.vocab_size} (incl. 4 specials)")

    if not args.skip_throughput:
        peak = mm_peak()
        rows = throughput(ids, tok.vocab_size, args.steps, args.rounds, args.compile)
        peak_after = mm_peak()
        print(
            f"\ntraining throughput: 4 layers, 4 heads, d_model 128, context 64, batch 12, "
            f"{args.rounds} x {args.steps} steps each, interleaved"
        )
        print(f"torch.mm fp32 peak (1024^3): {peak / 1e9:.1f} GFLOP/s before, {peak_after / 1e9:.1f} after")
        print("| contender | tokens/s | vs HF | achieved GFLOP/s | of mm peak |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for r in rows:
            print(
                f"| {r['name']} | {r['tokens_per_s']:,.0f} | {r['ratio']:.2f}x | {r['flops'] / 1e9:.2f} | "
                f"{r['flops'] / max(peak, peak_after):.0%} |"
            )

    if not args.skip_anchor:
        runs = [
            (f"{variant}, fp32, seed {seed}", anchor(args.iters, False, seed, ids, variant))
            for variant in args.variants
            for seed in args.seeds
        ]
        if args.anchor_bf16:
            runs.append(
                (
                    f"{args.variants[0]}, bf16 autocast, seed {args.seeds[0]}",
                    anchor(args.iters, True, args.seeds[0], ids, args.variants[0]),
                )
            )
        print(f"\nnanoGPT anchor: char tinyshakespeare, {args.iters} iterations (nanoGPT: val 1.88 at 2000)")
        print(
            "| run | val loss (all 111k val tokens) | nanoGPT-style estimate (20 random batches; 5 draws) "
            "| train loss | target <= 1.88 | tokens/s | wall time |"
        )
        print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
        for name, a in runs:
            ok = "met" if a["val_loss"] <= 1.88 else "missed"
            est = a["est"]
            print(
                f"| tokvec {name} | {a['val_loss']:.4f} | {sum(est) / len(est):.3f} "
                f"({min(est):.3f}-{max(est):.3f}) | {a['train_loss']:.4f} | {ok} | "
                f"{a['tokens_per_s']:,.0f} | {a['seconds']:.0f} s |"
            )


if __name__ == "__main__":
    main()
