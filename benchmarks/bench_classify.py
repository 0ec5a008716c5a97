"""Classifier training speed: the shared training loop (runs/loop.py) against the loop the classifier
had before it, in one run.

    python benchmarks/bench_classify.py [--rounds 5] [--steps 150]

The peer is the old hot loop, written out below as it was in runs/classify.py: per step a Python
pad of the picked rows, forward, backward, clipping, AdamW, and ``float(loss)`` (a host sync every
step). The shared loop pads once up front, slices per step, and reads the loss back every
``log_interval`` (10) steps. Both train the CLI's default classifier (d_model 64, 2 layers, 4 heads,
context 128, batch 16, lr 3e-3 cosine, clip 1.0) on the same 240 synthetic Chinese reviews, 1 torch
thread, sides alternating round after round so machine load falls on both. Timed: steps 2 .. N-1
(no set-up, no final eval or save). Reported: median steps/s of each side and the ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from _machine import cpu_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tokvec.device import to_device  # noqa: E402
from tokvec.model import ModelConfig, SequenceClassifier  # noqa: E402
from tokvec.runs.classify import ClassifyConfig, pad_batch, read_labelled_csv, train_classifier  # noqa: E402
from tokvec.tokenizers import build_tokenizer  # noqa: E402


def write_reviews(path: Path, n: int = 240) -> Path:
    rng = random.Random(0)
    good, bad, filler = "好棒讚妙佳", "壞差爛糟劣", "這部電影真的演員劇情音樂"
    lines = ["text,label"]
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        text = "".join(rng.choice(filler) for _ in range(rng.randint(3, 60)))
        k = rng.randint(0, len(text))
        lines.append(f"{text[:k]}{rng.choice(good if label == 'pos' else bad)}{text[k:]},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def old_loop(config: ClassifyConfig) -> float:
    """The classifier's loop before the shared one (steps/s over steps 2 .. max_steps - 1)."""
    texts, names = read_labelled_csv(config.csv)
    labels = sorted(set(names))
    tokenizer = build_tokenizer(config.tokenizer, "\n".join(texts))
    model_cfg = ModelConfig(
        vocab_size=tokenizer.vocab_size,
        context_length=config.context,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        positional=config.positional,
        dropout=config.dropout,
    )
    device = torch.device("cpu")
    torch.manual_seed(config.seed)
    model = SequenceClassifier(model_cfg, len(labels), pooling=config.pooling).to(device)
    rows = [tokenizer.encode(t)[: config.context] for t in texts]
    ys = torch.tensor([labels.index(n) for n in names], device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(config.seed)
    losses, t_start = [], 0.0
    model.train()
    for step in range(1, config.max_steps + 1):
        if step == 2:
            t_start = time.perf_counter()
        pick = torch.randint(0, len(rows), (min(config.batch_size, len(rows)),), generator=gen).tolist()
        ids, mask = pad_batch([rows[i] for i in pick], tokenizer.pad_id or 0)
        ids, mask = to_device(ids, device), to_device(mask, device)
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / config.max_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        _, loss = model(ids, labels=ys[pick], padding_mask=mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if step == config.max_steps - 1:
            return (config.max_steps - 2) / (time.perf_counter() - t_start)
    raise ValueError("max_steps must be at least 3")


def shared_loop(config: ClassifyConfig) -> float:
    """tokvec's train_classifier (the shared loop): steps/s over steps 2 .. max_steps - 1."""
    stamps = {}

    def progress(step: int, total: int, info: dict) -> None:
        if step in (1, total - 1):
            stamps[step] = time.perf_counter()

    train_classifier(config, progress=progress)
    return (config.max_steps - 2) / (stamps[config.max_steps - 1] - stamps[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rates: dict[str, list[float]] = {"old loop (float(loss) per step)": [], "shared loop (runs/loop.py)": []}
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_reviews(Path(tmp) / "reviews.csv")
        config = ClassifyConfig(csv=str(csv), max_steps=args.steps, device="cpu", val_fraction=0.0)
        for r in range(args.rounds):
            for name, side in zip(rates, (old_loop, shared_loop)):
                run = ClassifyConfig(**{**vars(config), "out": str(Path(tmp) / f"run{r}")})
                rates[name].append(side(run))
    old, new = (statistics.median(v) for v in rates.values())
    print(
        f"{cpu_name()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, 1 torch thread, "
        f"{args.rounds} interleaved rounds of {args.steps} steps, median steps/s"
    )
    print("| loop | steps/s | vs old loop |")
    print("| --- | ---: | ---: |")
    for name, values in rates.items():
        m = statistics.median(values)
        print(f"| {name} | {m:.1f} | {m / old:.2f}x |")
    print(
        f"(shared / old per round: {', '.join(f'{b / a:.2f}' for a, b in zip(*rates.values()))}; "
        f"median {new / old:.2f}x)"
    )


if __name__ == "__main__":
    main()
