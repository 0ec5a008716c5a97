"""Training parity with nanoGPT on its own CPU benchmark, one component at a time.

nanoGPT's README trains a character model on tiny Shakespeare on a CPU and reports val loss 1.88:

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
        --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
        --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

This file holds a reference written the way nanoGPT's ``model.py`` and ``train.py`` are (a GPT
with ``wte``/``wpe``/``h``/``ln_f``, LayerNorm without bias, causal SDPA, exact GELU, tied head,
GPT-2 init with ``c_proj`` scaled by 1/sqrt(2L); ``configure_optimizers`` decaying >= 2-D tensors
only; ``get_lr``; ``get_batch`` from the global RNG; ``estimate_loss`` over ``eval_iters`` random
batches), and checks tokvec against it:

1. components, each on its own: the learning-rate schedule at every step, the weight-decay groups,
   the init (which tensors, what std), the batch sampler (which windows can be drawn), the
   vocabulary (tokvec's char tokenizer adds 4 special tokens) and the eval estimator;
2. step by step: tokvec's ``train`` and the reference loop from the same weights on the same
   batches, in float64: the per-step losses agree to float noise (a difference in the loop, the
   model, the optimizer, the clipping or the schedule would show at once);
3. end to end (``--e2e``): tokvec's ``train`` and the reference loop, 2000 iterations, several seeds,
   each with its own init and its own batches as the two programs draw them; both scored on all val
   tokens and with nanoGPT's 20-batch estimate.

    python benchmarks/parity_nanogpt.py                   # 1 and 2 (a minute)
    python benchmarks/parity_nanogpt.py --e2e --seeds 1337 1 2   # and 3 (~5 min per run and seed)

tests/test_parity_nanogpt.py runs 1 and 2 on a small model in the test suite.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tokvec import TrainConfig, train  # noqa: E402
from tokvec.data.batches import batch_generator, random_batch, split_by_position  # noqa: E402
from tokvec.data.tokenfile import load_token_file  # noqa: E402

DATA = ROOT / ".." / "shared" / "data" / "tinyshakespeare.txt"

# nanoGPT's CPU benchmark (config/train_shakespeare_char.py with the README's CPU overrides)
RECIPE = dict(
    block_size=64,
    batch_size=12,
    n_layer=4,
    n_head=4,
    n_embd=128,
    max_iters=2000,
    lr_decay_iters=2000,
    learning_rate=1e-3,
    min_lr=1e-4,
    warmup_iters=100,
    beta1=0.9,
    beta2=0.99,
    weight_decay=0.1,
    grad_clip=1.0,
    eval_iters=20,
)


# -- the reference: nanoGPT's model.py, written out ------------------------------------------------
@dataclass
class RefConfig:
    block_size: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_embd: int
    bias: bool = False
    dropout: float = 0.0  # nanoGPT calls its Dropout modules even at p = 0; so does this reference


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT: PyTorch's lacked ``bias=False`` when it was written)."""

    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class RefAttention(nn.Module):
    def __init__(self, c: RefConfig) -> None:
        super().__init__()
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.resid_dropout = nn.Dropout(c.dropout)
        self.n_head, self.dropout = c.n_head, c.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class RefMLP(nn.Module):
    def __init__(self, c: RefConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class RefBlock(nn.Module):
    def __init__(self, c: RefConfig) -> None:
        super().__init__()
        self.ln_1, self.attn = LayerNorm(c.n_embd, c.bias), RefAttention(c)
        self.ln_2, self.mlp = LayerNorm(c.n_embd, c.bias), RefMLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    def __init__(self, c: RefConfig) -> None:
        super().__init__()
        self.config = c
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(c.vocab_size, c.n_embd),
                wpe=nn.Embedding(c.block_size, c.n_embd),
                drop=nn.Dropout(c.dropout),
                h=nn.ModuleList(RefBlock(c) for _ in range(c.n_layer)),
                ln_f=LayerNorm(c.n_embd, c.bias),
            )
        )
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        t = idx.size(1)
        pos = torch.arange(t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        params = {n: p for n, p in self.named_parameters() if p.requires_grad}
        groups = [
            {"params": [p for p in params.values() if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params.values() if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)  # nanoGPT fuses on CUDA only


def get_lr(it: int, *, learning_rate: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> float:
    """nanoGPT's schedule: linear warmup, cosine decay to min_lr at lr_decay_iters, then min_lr."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def get_batch(data: np.ndarray, block_size: int, batch_size: int, generator: torch.Generator | None = None):
    """nanoGPT's sampler: ``batch_size`` windows at uniform random starts in [0, len - block_size)."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in ix])
    y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix])
    return x, y


@torch.no_grad()
def estimate_loss(model, data: np.ndarray, *, eval_iters: int, block_size: int, batch_size: int, seed: int) -> float:
    """nanoGPT's ``estimate_loss`` for one split: the mean loss of ``eval_iters`` random batches."""
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    losses = [float(model(*get_batch(data, block_size, batch_size, g))[1]) for _ in range(eval_iters)]
    model.train(was)
    return sum(losses) / len(losses)


@torch.no_grad()
def full_loss(model, data: np.ndarray, *, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token loss over every non-overlapping window of ``data`` (all val tokens)."""
    was = model.training
    model.eval()
    starts = range(0, len(data) - block_size, block_size)
    total, count = 0.0, 0
    for b in range(0, len(starts), batch_size):
        rows = [data[i : i + block_size + 1].astype(np.int64) for i in starts[b : b + batch_size]]
        t = torch.from_numpy(np.stack(rows))
        x, y = t[:, :-1].contiguous(), t[:, 1:].contiguous()  # nanoGPT's loss views its targets
        total += float(model(x, y)[1]) * y.numel()
        count += y.numel()
    model.train(was)
    return total / count


# -- tokvec <-> reference -------------------------------------------------------------------------
def name_map(n_layer: int) -> dict[str, str]:
    """tokvec parameter name -> the reference's (nanoGPT's) name."""
    names = {
        "embed.token.embedding.weight": "transformer.wte.weight",
        "embed.positional.weight": "transformer.wpe.weight",
        "norm.weight": "transformer.ln_f.weight",
    }
    for i in range(n_layer):
        for ours, theirs in (
            ("norm1", "ln_1"),
            ("attn.qkv", "attn.c_attn"),
            ("attn.proj", "attn.c_proj"),
            ("norm2", "ln_2"),
            ("mlp.fc", "mlp.c_fc"),
            ("mlp.proj", "mlp.c_proj"),
        ):
            names[f"blocks.{i}.{ours}.weight"] = f"transformer.h.{i}.{theirs}.weight"
    return names


def reference_from(model) -> RefGPT:
    """A reference model holding exactly ``model``'s (a tokvec GPT's) weights."""
    c = model.config
    ref = RefGPT(
        RefConfig(
            block_size=c.context_length,
            vocab_size=c.vocab_size,
            n_layer=c.n_layers,
            n_head=c.n_heads,
            n_embd=c.d_model,
            bias=c.bias,
        )
    )
    ref.to(next(model.parameters()).dtype)
    theirs = dict(ref.named_parameters())
    ours = dict(model.named_parameters())
    mapping = name_map(c.n_layers)
    if set(mapping) != set(ours) or set(mapping.values()) != set(theirs):
        raise RuntimeError(
            f"parameter names moved: tokvec {sorted(set(ours) ^ set(mapping))}, "
            f"reference {sorted(set(theirs) ^ set(mapping.values()))}"
        )
    with torch.no_grad():
        for a, b in mapping.items():
            theirs[b].copy_(ours[a])
    return ref


# -- components, one at a time ---------------------------------------------------------------------
def check_schedule(max_iters: int, warmup: int, lr: float, min_lr: float) -> float:
    """Largest |tokvec lr - nanoGPT lr| over every iteration (0 = the same schedule)."""
    config = TrainConfig(max_steps=max_iters, warmup_steps=warmup, lr=lr, min_lr=min_lr)
    return max(
        abs(
            config.lr_at(it)
            - get_lr(it, learning_rate=lr, min_lr=min_lr, warmup_iters=warmup, lr_decay_iters=max_iters)
        )
        for it in range(max_iters + 1)
    )


def decay_groups(model) -> tuple[set[str], set[str]]:
    """(tokvec's decayed tensors, the reference's), both as reference names."""
    from tokvec.runs.train import make_optimizer  # the optimizer tokvec's train builds

    optimizer, _ = make_optimizer(model, TrainConfig(weight_decay=0.1))
    by_id = {id(p): n for n, p in model.named_parameters()}
    mapping = name_map(model.config.n_layers)
    ours = {mapping[by_id[id(p)]] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    ref = reference_from(model)
    opt = ref.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    by_id = {id(p): n for n, p in ref.named_parameters()}
    theirs = {by_id[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    return ours, theirs


def init_stds(vocab: int, c: dict, seed: int = 0) -> list[tuple[str, float, float]]:
    """Per tensor (reference name): the std of tokvec's init and of nanoGPT's, same shapes."""
    from tokvec import GPT, ModelConfig

    torch.manual_seed(seed)
    ours = GPT(
        ModelConfig(
            vocab_size=vocab,
            context_length=c["block_size"],
            d_model=c["n_embd"],
            n_layers=c["n_layer"],
            n_heads=c["n_head"],
            dropout=0.0,
            bias=False,
        )
    )
    torch.manual_seed(seed)
    ref = RefGPT(
        RefConfig(
            block_size=c["block_size"], vocab_size=vocab, n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"]
        )
    )
    theirs = dict(ref.named_parameters())
    return [
        (b, float(p.detach().std()), float(theirs[b].detach().std()))
        for a, p in ours.named_parameters()
        for b in [name_map(c["n_layer"])[a]]
    ]


def sampler_starts(n_train: int, block: int, batch: int, draws: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(min, max) window start drawn by tokvec's sampler and by nanoGPT's over ``draws`` batches."""
    seg = np.arange(n_train, dtype=np.int64)
    ours = np.concatenate(
        [
            random_batch((seg,), batch_size=batch, context=block, generator=batch_generator(1337, s))[0][:, 0].numpy()
            for s in range(draws)
        ]
    )
    g = torch.Generator().manual_seed(1337)
    theirs = np.concatenate([get_batch(seg, block, batch, g)[0][:, 0].numpy() for _ in range(draws)])
    return (int(ours.min()), int(ours.max())), (int(theirs.min()), int(theirs.max()))


# -- step by step ---------------------------------------------------------------------------------
def tokvec_config(
    corpus: str, out: str, c: dict, *, seed: int, max_iters: int, eval_batches: int = 200, warmup: int | None = None
) -> TrainConfig:
    """tokvec's ``train`` set up as nanoGPT's recipe ``c`` (what ``tokvec train`` would be given)."""
    return TrainConfig(
        corpus=corpus,
        tokenizer="char",
        positional="learned",
        context_length=c["block_size"],
        d_model=c["n_embd"],
        n_layers=c["n_layer"],
        n_heads=c["n_head"],
        dropout=0.0,
        model_options={"bias": False},
        batch_size=c["batch_size"],
        max_steps=max_iters,
        lr=c["learning_rate"],
        min_lr=c["min_lr"],
        warmup_steps=c["warmup_iters"] if warmup is None else warmup,
        beta1=c["beta1"],
        beta2=c["beta2"],
        weight_decay=c["weight_decay"],
        grad_clip=c["grad_clip"],
        eval_interval=max_iters,
        eval_batches=eval_batches,
        val_split="tail",
        seed=seed,
        out=out,
        threads=1,
    )


def step_by_step(
    corpus: str,
    c: dict,
    *,
    steps: int,
    seed: int = 1337,
    dtype=torch.float64,
    warmup: int = 10,
    reference: dict | None = None,
) -> tuple[list[float], list[float]]:
    """Per-step training losses of tokvec's ``train`` and of the reference loop, from the same initial
    weights on the same batches (tokvec's draws), in ``dtype``. Returns (tokvec's, reference's).
    ``reference``: recipe entries changed on the reference side only (to see a difference show)."""
    from tokvec import GPT

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = tokvec_config(
                corpus, str(Path(tmp) / "run"), c, seed=seed, max_iters=steps, eval_batches=1, warmup=warmup
            )
            result = train(config)
            ids = np.asarray(load_token_file(Path(tmp) / "run" / "tokens.bin"))
        torch.manual_seed(seed)  # train() seeds the same way before building its model
        start = GPT(result.model.config)
        ref = reference_from(start)
        c = {**c, **(reference or {})}
        opt = ref.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]))
        split = split_by_position(ids, context=c["block_size"], mode="tail")
        losses = []
        for it in range(steps):
            lr = get_lr(
                it, learning_rate=c["learning_rate"], min_lr=c["min_lr"], warmup_iters=warmup, lr_decay_iters=steps
            )
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = random_batch(
                split.train, batch_size=c["batch_size"], context=c["block_size"], generator=batch_generator(seed, it)
            )
            _, loss = ref(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), c["grad_clip"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        return result.losses, losses
    finally:
        torch.set_default_dtype(before)


# -- end to end -----------------------------------------------------------------------------------
def reference_run(text: str, c: dict, *, seed: int, vocab_extra: int = 0) -> dict:
    """nanoGPT's training loop on ``text``: sorted-character vocabulary (+ ``vocab_extra`` unused ids),
    first 90% train, its own init and batches from the global RNG seeded with ``seed``."""
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = np.array([stoi[ch] for ch in text], dtype=np.uint16)
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    torch.manual_seed(seed)
    model = RefGPT(
        RefConfig(
            block_size=c["block_size"],
            vocab_size=len(chars) + vocab_extra,
            n_layer=c["n_layer"],
            n_head=c["n_head"],
            n_embd=c["n_embd"],
        )
    )
    opt = model.configure_optimizers(c["weight_decay"], c["learning_rate"], (c["beta1"], c["beta2"]))
    t0 = time.perf_counter()
    for it in range(c["max_iters"]):
        lr = get_lr(
            it,
            learning_rate=c["learning_rate"],
            min_lr=c["min_lr"],
            warmup_iters=c["warmup_iters"],
            lr_decay_iters=c["lr_decay_iters"],
        )
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, c["block_size"], c["batch_size"])
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    return {
        "model": model,
        "val": val_data,
        "seconds": seconds,
        "tokens_per_s": c["max_iters"] * c["batch_size"] * c["block_size"] / seconds,
    }


def tokvec_run(corpus: str, c: dict, *, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = train(tokvec_config(corpus, str(Path(tmp) / "run"), c, seed=seed, max_iters=c["max_iters"]))
        ids = np.asarray(load_token_file(Path(tmp) / "run" / "tokens.bin")).copy()
    val = split_by_position(ids, context=c["block_size"], mode="tail").val
    return {"model": result.model, "val": val, "seconds": result.elapsed_s, "tokens_per_s": result.tokens_per_s}


def scores(run: dict, c: dict, draws: int = 5) -> dict:
    est = [
        estimate_loss(
            run["model"],
            run["val"],
            eval_iters=c["eval_iters"],
            block_size=c["block_size"],
            batch_size=c["batch_size"],
            seed=s,
        )
        for s in range(draws)
    ]
    return {"full": full_loss(run["model"], run["val"], block_size=c["block_size"]), "est": est}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--e2e", action="store_true", help="also the 2000-iteration runs (minutes per seed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    parser.add_argument("--iters", type=int, default=RECIPE["max_iters"])
    parser.add_argument("--steps", type=int, default=50, help="step-by-step comparison length")
    parser.add_argument(
        "--vocab-extra",
        action="store_true",
        help="also run the reference with 4 unused vocabulary rows (tokvec's specials)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not DATA.is_file():
        print(f"skipped: {DATA.resolve()} not found (the benchmark corpus lives next to the repository)")
        return
    c = {**RECIPE, "max_iters": args.iters, "lr_decay_iters": args.iters}
    text = DATA.read_text(encoding="utf-8")
    from tokvec import CharTokenizer

    vocab = CharTokenizer.train([text]).vocab_size
    print(f"corpus: tinyshakespeare, {len(text):,} characters; tokvec vocab {vocab}, nanoGPT vocab {len(set(text))}")

    print("\n| component | tokvec | nanoGPT (reference) | same? |\n| --- | --- | --- | --- |")
    diff = check_schedule(c["max_iters"], c["warmup_iters"], c["learning_rate"], c["min_lr"])
    print(f"| lr schedule, iterations 0..{c['max_iters']} | max abs difference {diff:.1e} | | {diff < 1e-15} |")
    from tokvec import GPT, ModelConfig

    probe = GPT(ModelConfig(vocab_size=vocab, context_length=64, d_model=128, n_layers=4, n_heads=4, bias=False))
    ours, theirs = decay_groups(probe)
    print(f"| weight-decay group | {len(ours)} tensors | {len(theirs)} tensors | {ours == theirs} |")
    stds = init_stds(vocab, c)
    worst = max(abs(a - b) / max(b, 1e-3) for _, a, b in stds)  # LayerNorm gains: std 0 on both sides
    print(f"| init std per tensor ({len(stds)} tensors) | | | largest relative difference {worst:.1%} |")
    n_train = int(0.9 * len(text))
    (lo, hi), (rlo, rhi) = sampler_starts(n_train, c["block_size"], c["batch_size"], 2000)
    print(f"| window starts drawn (24k windows) | {lo}..{hi} | {rlo}..{rhi} | of 0..{n_train - c['block_size'] - 1} |")
    print(
        f"| vocabulary | {vocab} rows ({vocab - len(set(text))} special, never a target) | {len(set(text))} rows "
        f"| see --vocab-extra |"
    )

    tv, ref = step_by_step(str(DATA), c, steps=args.steps)
    rel = max(abs(a - b) / abs(b) for a, b in zip(tv, ref))
    print(
        f"\nstep by step, float64, {args.steps} steps from the same weights on the same batches: "
        f"largest relative loss difference {rel:.1e} (step 1: {tv[0]:.6f} vs {ref[0]:.6f}; "
        f"step {args.steps}: {tv[-1]:.6f} vs {ref[-1]:.6f})"
    )

    if not args.e2e:
        return
    print(
        f"\nend to end, {c['max_iters']} iterations, 1 thread; val loss on all val tokens, and nanoGPT's "
        f"{c['eval_iters']}-batch estimate (mean of 5 draws, range)"
    )
    print(
        "| seed | run | val loss (all tokens) | 20-batch estimate | tokens/s | time |\n| --- | --- | ---: | ---: | ---: | ---: |"
    )
    rows = {"tokvec": [], "reference": [], "reference +4 rows": []}
    for seed in args.seeds:
        contenders = [
            ("reference", lambda: reference_run(text, c, seed=seed)),
            ("tokvec", lambda: tokvec_run(str(DATA), c, seed=seed)),
        ]
        if args.vocab_extra:
            contenders.append(("reference +4 rows", lambda: reference_run(text, c, seed=seed, vocab_extra=4)))
        for name, run_fn in contenders:
            run = run_fn()
            s = scores(run, c)
            rows[name].append(s)
            est = s["est"]
            print(
                f"| {seed} | {name} | {s['full']:.4f} | {sum(est) / len(est):.4f} ({min(est):.3f}-{max(est):.3f}) "
                f"| {run['tokens_per_s']:,.0f} | {run['seconds']:.0f} s |",
                flush=True,
            )
    for name, rs in rows.items():
        if rs:
            full = [r["full"] for r in rs]
            print(f"| mean | {name} | {np.mean(full):.4f} | {np.mean([np.mean(r['est']) for r in rs]):.4f} | | |")


if __name__ == "__main__":
    main()
