"""Length extrapolation: train one small model per positional scheme at one length, score it at longer ones.

    >>> rows = compare(CompareConfig(corpus="tinyshakespeare.txt", schemes=("rope", "alibi")))
    >>> print(format_table(rows))

Every scheme gets the same model, data, seed and budget (:class:`CompareConfig`, the one place the
budget lives); only ``positional`` differs. Each model trains at ``train_len`` tokens with
:func:`tokvec.runs.train.train`, then its loss is measured on the held-out split in windows of each eval
length, the same number of tokens per length. What to expect (Press et al. 2022, Fig. 1; Kazemnejad
et al. 2023): ALiBi and T5 stay near their train-length perplexity, or improve (more context); the
learned absolute table cannot run past ``train_len`` at all; sinusoidal and plain RoPE do well at
``train_len`` and blow up beyond it (positions and rotation angles never seen in training); NoPE
and the clipped relative schemes (Shaw, and XL's relative sinusoids) sit in between.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from .._io import atomic_open
from ..errors import TokvecError, TokvecValueError
from ..positional.registry import available


@dataclass(frozen=True)
class CompareConfig:
    """The whole comparison budget. Defaults: about a minute per scheme on 2 CPU cores (character model)."""

    corpus: Optional[str] = None  # file or directory; None: the Python standard library
    encoding: str = "utf-8"  # text encoding of the corpus
    train_len: int = 128  # context length the models train at
    eval_lens: tuple[int, ...] = (128, 256, 512, 1024)  # lengths the loss is measured at
    schemes: tuple[str, ...] = field(default_factory=lambda: tuple(available()))
    tokenizer: str = "char"
    d_model: int = 64  # small: the point is the shape of the curve, not its floor
    n_layers: int = 2
    n_heads: int = 4
    max_steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3  # a tiny model tolerates nanoGPT's char-level 1e-3 x 3
    eval_tokens: int = 16384  # tokens scored per eval length, the same for every length
    seed: int = 1337
    threads: Optional[int] = None

    def validate(self) -> "CompareConfig":
        """Collect every problem, then raise once naming each field, its value and the limit."""
        problems = []
        from .._checks import MAX_DIM, check_float_arg, check_int_arg, check_seed, check_threads
        from ..errors import TokvecError

        checks = [
            (check_int_arg, name, dict(lo=1, hi=MAX_DIM))
            for name in ("train_len", "d_model", "n_layers", "n_heads", "batch_size", "eval_tokens")
        ]
        checks += [
            (check_int_arg, "max_steps", dict(lo=1, hi=10**12)),
            (check_seed, "seed", {}),
            (check_threads, "threads", {}),
            (check_float_arg, "lr", dict(lo=0.0, lo_open=True, hi=1e3)),
        ]
        for fn, name, limits in checks:
            try:
                fn(name, getattr(self, name), **limits)
            except TokvecError as e:
                problems.append(str(e))
        if not self.eval_lens or any(
            isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_DIM for n in self.eval_lens
        ):
            problems.append(f"eval_lens {self.eval_lens!r} must be one or more integers in [1, {MAX_DIM}]")
        unknown = [s for s in self.schemes if s not in available()]
        if unknown or not self.schemes:
            problems.append(
                f"schemes {list(self.schemes)!r}: unknown {unknown}; known schemes: {', '.join(available())}"
            )
        if problems:
            raise TokvecValueError("bad comparison config: " + "; ".join(problems))
        return self


@dataclass(frozen=True)
class CompareRow:
    """One (scheme, eval length) measurement; ``loss`` is NaN when the scheme cannot run that long."""

    scheme: str
    eval_len: int
    loss: float
    note: str = ""

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss) if math.isfinite(self.loss) else math.nan


def parse_schemes(spec: str) -> tuple[str, ...]:
    """``"all"`` or a comma list (``"rope,alibi"``) -> scheme names, unknown ones refused by name."""
    names = tuple(available()) if spec.strip() == "all" else tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [s for s in names if s not in available()]
    if unknown or not names:
        raise TokvecValueError(
            f"unknown positional scheme(s) {unknown or [spec]}; known schemes: {', '.join(available())}, or all"
        )
    return names


def parse_lengths(spec: str) -> tuple[int, ...]:
    """``"128,256,512"`` -> (128, 256, 512); anything else is an error quoting the bad item."""
    lengths = []
    for item in spec.split(","):
        try:
            n = int(item)
        except ValueError:
            raise TokvecValueError(
                f"eval length {item.strip()!r} in {spec!r} is not an integer; write lengths like 128,256,512"
            ) from None
        if n < 1:
            raise TokvecValueError(f"eval length {n} in {spec!r} must be >= 1")
        lengths.append(n)
    return tuple(lengths)


def _train_config(config: CompareConfig, scheme: str, out: str):
    from .train import TrainConfig

    return TrainConfig(
        corpus=config.corpus,
        encoding=config.encoding,
        tokenizer=config.tokenizer,
        preset="tiny",
        positional=scheme,
        d_model=config.d_model,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        context_length=config.train_len,
        dropout=0.0,
        max_steps=config.max_steps,
        batch_size=config.batch_size,
        lr=config.lr,
        eval_interval=config.max_steps,
        eval_batches=8,
        seed=config.seed,
        threads=config.threads,
        out=out,
    )


def compare(config: CompareConfig, *, progress: Optional[Callable[[str], None]] = None) -> list[CompareRow]:
    """Train each scheme at ``train_len`` and measure its held-out loss at every eval length.

    ``progress(message)`` is called as each scheme starts training and as each length is scored.
    Training runs go to a temporary directory (only the measurements are the product).
    """
    from ..data.batches import split_by_position
    from ..data.tokenfile import load_token_file
    from .train import TOKENS_FILE, evaluate, train

    config.validate()
    rows: list[CompareRow] = []
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="tokvec-compare-") as tmp:
        for scheme in config.schemes:
            if progress:
                progress(f"{scheme}: training at {config.train_len} tokens, {config.max_steps} steps")
            result = train(_train_config(config, scheme, os.path.join(tmp, scheme)))
            if scheme == config.schemes[0]:
                # the split train() used: same ids, context, fraction and seed
                cfg = _train_config(config, scheme, tmp)
                ids = load_token_file(Path(result.run_dir) / TOKENS_FILE)  # the ids train() read, exactly
                val = split_by_position(
                    ids, context=config.train_len, val_fraction=cfg.val_fraction, seed=cfg.seed, mode=cfg.val_split
                ).val
                too_long = [n for n in config.eval_lens if n + 1 > len(val)]
                if too_long:
                    raise TokvecValueError(
                        f"eval lengths {too_long} do not fit the held-out split of {len(val)} "
                        f"tokens; use a longer corpus or shorter --eval-lens"
                    )
            if config.threads is not None:
                torch.set_num_threads(config.threads)
            try:
                for n in config.eval_lens:
                    if progress:
                        progress(f"{scheme}: scoring windows of {n} tokens")
                    windows = max(1, config.eval_tokens // n)
                    batch = max(1, min(windows, 8192 // n))  # at most 8192 tokens per forward
                    try:
                        loss = evaluate(
                            result.model, [val], batch_size=batch, context=n, max_batches=math.ceil(windows / batch)
                        )
                        rows.append(CompareRow(scheme, n, loss))
                    except TokvecError as e:  # the learned table past its length: record why, go on
                        rows.append(CompareRow(scheme, n, math.nan, str(e).split(";")[0]))
            finally:
                torch.set_num_threads(threads)
    return rows


def format_table(rows: Sequence[CompareRow]) -> str:
    """Perplexity per scheme (rows) and eval length (columns), as a Markdown table."""
    lengths = sorted({r.eval_len for r in rows})
    schemes = list(dict.fromkeys(r.scheme for r in rows))
    by = {(r.scheme, r.eval_len): r for r in rows}
    lines = ["| scheme | " + " | ".join(f"ppl @ {n}" for n in lengths) + " |", "|---|" + "---:|" * len(lengths)]
    for s in schemes:
        cells = [
            f"{by[s, n].perplexity:.2f}" if (s, n) in by and math.isfinite(by[s, n].loss) else "n/a" for n in lengths
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[CompareRow], path: str | os.PathLike) -> Path:
    """scheme, eval_len, loss, perplexity, note; written atomically."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scheme", "eval_len", "loss", "perplexity", "note"])
        for r in rows:
            writer.writerow([r.scheme, r.eval_len, f"{r.loss:.6f}", f"{r.perplexity:.4f}", r.note])
    return path


def plot(rows: Sequence[CompareRow], path: str | os.PathLike, *, train_len: Optional[int] = None) -> Path:
    """Perplexity vs eval length, one line per scheme (log-log), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for scheme in dict.fromkeys(r.scheme for r in rows):
        points = [(r.eval_len, r.perplexity) for r in rows if r.scheme == scheme and math.isfinite(r.loss)]
        if points:
            ax.plot(*zip(*points), marker="o", label=scheme)
    if train_len:
        ax.axvline(train_len, color="grey", linestyle=":", linewidth=1)
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    lengths = sorted({r.eval_len for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("eval length (tokens)" + (f"; trained at {train_len}" if train_len else ""))
    ax.set_ylabel("held-out perplexity")
    ax.set_title("Length extrapolation by positional scheme")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
    return path


__all__ = [
    "CompareConfig",
    "CompareRow",
    "compare",
    "format_table",
    "write_csv",
    "plot",
    "parse_schemes",
    "parse_lengths",
]
