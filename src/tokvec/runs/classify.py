"""Sequence classification, the toy task of the classic tutorials, on the same embeddings and blocks.

    text, label rows (CSV) ──tokenizer──▶ ids, padded on the right to (batch, seq)
        ──SequenceClassifier (InputEmbedding + blocks + pooling + linear)──▶ logits (batch, n_classes)

    >>> from tokvec.runs.classify import ClassifyConfig, train_classifier, load_classifier
    >>> result = train_classifier(ClassifyConfig(csv="labels.csv", out="runs/clf"))
    >>> result.val_accuracy
    >>> clf = load_classifier("runs/clf"); clf.predict(["這部電影很好"])

A classifier run directory holds ``classifier.json`` (format, model config, labels, train config,
metrics), ``classifier.safetensors`` and ``tokenizer.json``, each written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .._io import atomic_open, read_json, write_json
from ..errors import FormatError, TokvecValueError

FORMAT = "tokvec.classifier"
VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "classifier.json", "classifier.safetensors", "tokenizer.json"


@dataclass
class ClassifyConfig:
    """Everything a classifier run depends on. Model sizes default to a small, fast model."""

    csv: str = "labels.csv"
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    tokenizer: str = "char"               # char | word | path of a saved tokenizer
    positional: str = "learned"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    context: int = 128                    # longer texts are cut to their first `context` tokens
    pooling: str = "last"                 # last: the one token that has seen the whole text (causal blocks)
    dropout: float = 0.0
    max_steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    val_fraction: float = 0.2
    seed: int = 1337
    out: str = "runs/classifier"


@dataclass
class ClassifyResult:
    run_dir: Path
    labels: list[str]
    train_accuracy: float
    val_accuracy: Optional[float]
    losses: list[float]
    classifier: "Classifier"


def read_labelled_csv(path: str | os.PathLike, *, text_column: str = "text", label_column: str = "label",
                      encoding: str = "utf-8") -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV with a header row naming ``text_column`` and ``label_column``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    try:
        with open(path, newline="", encoding=encoding) as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in (text_column, label_column) if c not in columns]
            if missing:
                raise FormatError(f"{path} has no column {', '.join(map(repr, missing))}; its header is "
                                  f"{columns}; name the columns with --text-column / --label-column")
            texts, labels = [], []
            for line, row in enumerate(reader, start=2):
                label = (row.get(label_column) or "").strip()
                if not label:
                    raise FormatError(f"{path} line {line}: empty {label_column!r}; every row needs a label")
                texts.append(row.get(text_column) or "")
                labels.append(label)
    except UnicodeDecodeError as e:
        raise TokvecValueError(f"{path} is not valid {encoding} at byte offset {e.start}; pass --encoding "
                               f"(e.g. --encoding gb18030 for a GBK Chinese file)") from None
    if len(set(labels)) < 2:
        raise TokvecValueError(f"{path} has {len(labels)} rows but {len(set(labels))} distinct label(s) "
                               f"{sorted(set(labels))}; a classifier needs at least 2")
    return texts, labels


class Classifier:
    """A trained SequenceClassifier with its tokenizer and label names: ``predict(texts)``."""

    def __init__(self, model, tokenizer, labels: Sequence[str], context: int) -> None:
        self.model, self.tokenizer, self.labels, self.context = model.eval(), tokenizer, list(labels), context

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids (b, s) and their padding mask (b, s), True at padding."""
        return pad_batch([self.tokenizer.encode(t)[: self.context] for t in texts], self.tokenizer.pad_id or 0)

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), n_classes) class probabilities."""
        ids, mask = self.batch(texts)
        logits, _ = self.model(ids, padding_mask=mask)
        return logits.softmax(-1)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.probabilities(texts).argmax(-1).tolist()]


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists on the right: ids (b, s) and mask (b, s), True at padding. Empty rows keep one pad
    token (masked) so every row has a length."""
    width = max(1, max((len(r) for r in rows), default=1))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.ones(len(rows), width, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = False
    mask[:, 0] &= torch.tensor([len(r) > 0 for r in rows])  # an empty text is read as one pad token
    return ids, mask


def _accuracy(clf: Classifier, texts: Sequence[str], labels: Sequence[int], batch_size: int = 64) -> float:
    right = 0
    for i in range(0, len(texts), batch_size):
        pred = clf.probabilities(texts[i:i + batch_size]).argmax(-1)
        right += int((pred == torch.tensor(labels[i:i + batch_size])).sum())
    return right / max(1, len(texts))


def train_classifier(config: ClassifyConfig, *, progress: Callable[[int, int, dict], None] | None = None
                     ) -> ClassifyResult:
    """Train a classifier on the CSV ``config.csv``; the run goes to ``config.out``.

    Rows are shuffled by the seed and split: the last ``val_fraction`` is held out for accuracy.
    ``progress(step, max_steps, info)`` is called after every step with ``loss``.
    """
    from ..model import ModelConfig, SequenceClassifier
    from ..tokenizers import build_tokenizer

    if not 0 <= config.val_fraction < 1:
        raise TokvecValueError(f"val_fraction {config.val_fraction} must be in [0, 1), e.g. 0.2")
    for name in ("max_steps", "batch_size", "context"):
        if getattr(config, name) < 1:
            raise TokvecValueError(f"{name} {getattr(config, name)} must be an integer >= 1")
    texts, names = read_labelled_csv(config.csv, text_column=config.text_column, label_column=config.label_column,
                                     encoding=config.encoding)
    labels = sorted(set(names))
    y_all = [labels.index(n) for n in names]
    order = list(range(len(texts)))
    random.Random(config.seed).shuffle(order)
    n_val = int(round(len(order) * config.val_fraction))
    train_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val:]
    train_texts = [texts[i] for i in train_idx]
    tokenizer = build_tokenizer(config.tokenizer, "\n".join(train_texts))
    model_cfg = ModelConfig(vocab_size=tokenizer.vocab_size, context_length=config.context, d_model=config.d_model,
                            n_layers=config.n_layers, n_heads=config.n_heads, positional=config.positional,
                            dropout=config.dropout)
    torch.manual_seed(config.seed)
    model = SequenceClassifier(model_cfg, len(labels), pooling=config.pooling)
    clf = Classifier(model, tokenizer, labels, config.context)
    rows = [tokenizer.encode(t)[: config.context] for t in train_texts]
    ys = torch.tensor([y_all[i] for i in train_idx])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(config.seed)
    losses = []
    model.train()
    for step in range(1, config.max_steps + 1):
        pick = torch.randint(0, len(rows), (min(config.batch_size, len(rows)),), generator=gen).tolist()
        ids, mask = pad_batch([rows[i] for i in pick], tokenizer.pad_id or 0)
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / config.max_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        _, loss = model(ids, labels=ys[pick], padding_mask=mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, config.max_steps, {"loss": losses[-1]})
    model.eval()
    train_acc = _accuracy(clf, train_texts, ys.tolist())
    val_acc = _accuracy(clf, [texts[i] for i in val_idx], [y_all[i] for i in val_idx]) if val_idx else None
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(run_dir / TOKENIZER_FILE)
    with atomic_open(run_dir / WEIGHTS_FILE, "wb") as f:
        f.write(st_save({k: v.contiguous() for k, v in model.state_dict().items()}))
    write_json(run_dir / CONFIG_FILE, {
        "format": FORMAT, "version": VERSION, "model": model_cfg.to_dict(), "pooling": config.pooling,
        "labels": labels, "train": dataclasses.asdict(config), "n_train": len(train_idx), "n_val": len(val_idx),
        "train_accuracy": train_acc, "val_accuracy": val_acc, "final_loss": losses[-1]})
    return ClassifyResult(run_dir=run_dir, labels=labels, train_accuracy=train_acc, val_accuracy=val_acc,
                          losses=losses, classifier=clf)


def load_classifier(run_dir: str | os.PathLike) -> Classifier:
    """The classifier saved by :func:`train_classifier` in ``run_dir`` (no unpickling)."""
    from ..model import ModelConfig, SequenceClassifier
    from ..tokenizers import load_tokenizer

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"no classifier run at {run_dir} ({CONFIG_FILE} missing); "
                                f"train one with: tokvec classify train --csv FILE --out {run_dir}")
    meta = read_json(run_dir / CONFIG_FILE)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise FormatError(f"{run_dir / CONFIG_FILE} is not a {FORMAT} version {VERSION} file")
    model = SequenceClassifier(ModelConfig.from_dict(meta["model"]), len(meta["labels"]), pooling=meta["pooling"])
    try:
        state = st_load((run_dir / WEIGHTS_FILE).read_bytes())
    except Exception as e:  # safetensors raises its own error types on a damaged file
        raise FormatError(f"{run_dir / WEIGHTS_FILE} cannot be read ({e}); the run is damaged") from None
    model.load_state_dict(state)
    return Classifier(model, load_tokenizer(run_dir / TOKENIZER_FILE), meta["labels"], meta["model"]["context_length"])


__all__ = ["ClassifyConfig", "ClassifyResult", "Classifier", "train_classifier", "load_classifier",
           "read_labelled_csv", "pad_batch"]
