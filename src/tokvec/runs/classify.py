"""Sequence classification, the toy task of the classic tutorials, on the same embeddings and blocks.

    text, label rows (CSV) ──tokenizer──▶ ids, padded on the right to (batch, seq)
        ──SequenceClassifier (InputEmbedding + blocks + pooling + linear)──▶ logits (batch, n_classes)

    >>> from tokvec.runs.classify import ClassifyConfig, train_classifier, load_classifier
    >>> result = train_classifier(ClassifyConfig(csv="labels.csv", out="runs/clf"))
    >>> result.val_accuracy
    >>> clf = load_classifier("runs/clf"); clf.predict(["這部電影很好"])

A classifier run directory holds ``classifier.json`` (format, model config, labels, train config,
accuracy, step, the CSV's sha256, the sha256 of the weights and optimizer state),
``classifier.safetensors``, ``optimizer.safetensors`` (AdamW's state, as LM runs store it),
``tokenizer.json`` and ``metrics.jsonl`` (one line per logged step: step, split "train", loss, lr;
eval steps add train_accuracy and val_accuracy). It is trained by the loop LM training uses
(:mod:`tokvec.runs.loop`) and committed the way LM runs are (:func:`tokvec.runs.checkpoint.commit_files`:
the weights written aside, ``classifier.json`` written last is the commit); runs written before that
(no ``files`` entry) still load.

``resume`` continues a run from its last checkpoint, bit-exact on the CPU (batches and dropout are
drawn from (seed, step), so no RNG state is stored): the CSV must be the one it started with (its
sha256 is checked) and the run's own tokenizer.json is used.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from .._io import read_json
from .._schema import Doc
from .._tensorread import TensorFile, file_sha256
from ..device import resolve_device, to_device
from ..errors import FormatError, RunDirError, TokvecError, TokvecValueError
from ..model.config import ModelConfig, model_fields, model_overrides
from ..tokenizers.build import names_a_file
from . import checkpoint as ckpt
from . import distributed as dist_
from .checkpoint import (
    OPTIMIZER_FILE,
    check_config_checksum,
    commit_files,
    committed_files,
    module_targets,
    optimizer_tensors,
    read_committed,
    save_tokenizer,
)
from .lock import RunClaim, run_kind, with_absolute_paths
from .loop import LoopSettings, Trainee, TrainingLoop, warmup_cosine

FORMAT = "tokvec.classifier"
VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "classifier.json", "classifier.safetensors", "tokenizer.json"

# Fields that may change when a run is resumed (as ``tokvec train --resume``); any other difference is
# an error. The CSV may move (``--csv`` its new place): its content is checked by sha256.
RESUMABLE = ("max_steps", "eval_interval", "log_interval", "device", "out", "resume", "force", "csv")

# The model fields, declared once in ModelConfig (context_length is ``context`` here); a small, fast model.
ClassifierModelFields = model_fields(
    "ClassifierModelFields",
    exclude=("vocab_size", "context_length"),
    defaults=dict(positional="learned", d_model=64, n_layers=2, n_heads=4, dropout=0.0),
)


@dataclass
class ClassifyConfig(ClassifierModelFields):
    """Everything a classifier run depends on. Every ModelConfig field can be set by keyword
    (``d_model=32, norm="rmsnorm"``); those left None take ModelConfig's default."""

    csv: str = "labels.csv"
    text_column: str = "text"
    label_column: str = "label"
    encoding: str = "utf-8"
    tokenizer: str = "char"  # char | word | path of a saved tokenizer
    context: int = 128  # longer texts are cut to their first `context` tokens
    pooling: str = "last"  # last: the one token that has seen the whole text (causal blocks)
    max_steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    min_lr: float = 0.0  # end of the cosine
    warmup_steps: int = 0  # linear warmup steps before the cosine
    weight_decay: float = 0.01  # AdamW's, on every parameter
    grad_clip: float = 1.0  # 0 disables clipping
    eval_interval: Optional[int] = None  # accuracy + checkpoint every N steps; None: after the last step only
    log_interval: int = 10  # the loss is read back (a device sync) every N steps
    val_fraction: float = 0.2
    seed: int = 1337
    out: str = "runs/classifier"
    force: bool = False  # replace a classifier already in ``out`` instead of refusing
    resume: bool = False  # continue the classifier run in ``out`` from its last checkpoint
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (tokvec.device.resolve_device)

    @classmethod
    def for_resume(cls, run_dir: str | os.PathLike, **overrides) -> "ClassifyConfig":
        """The saved config of the classifier run ``run_dir`` with ``overrides`` (flags given with
        ``--resume``) applied; :func:`train_classifier` refuses those that may not change."""
        _check_resumable(Path(run_dir))
        meta, doc, path = _read_meta(Path(run_dir))
        saved = doc.obj("train").data
        names = {f.name for f in dataclasses.fields(cls)}
        if set(overrides) - names:
            raise TokvecValueError(
                f"unknown classifier config keys {sorted(set(overrides) - names)}; known: {', '.join(sorted(names))}"
            )
        unknown = sorted(set(saved) - names)
        if unknown:
            raise FormatError(f"{path}: 'train' has keys this tokvec does not know ({unknown}); upgrade tokvec")
        try:
            return cls(**{**saved, **overrides, "out": str(run_dir), "resume": True, "force": False})
        except TypeError as e:
            raise FormatError(f"{path}: 'train' does not fit this tokvec's classifier config ({e})") from None

    def validate(self) -> "ClassifyConfig":
        """Collect every problem, then raise once naming each field, its value and the limit."""
        from .._checks import bound_from, check_float_arg, check_int_arg, check_seed

        problems = []
        checks = [
            (check_float_arg, "val_fraction", dict(lo=0.0, hi=1.0, hi_open=True, fix="e.g. --val-fraction 0.2")),
            (check_int_arg, "max_steps", dict(lo=1, hi=10**9)),
            (check_int_arg, "batch_size", dict(lo=1, hi=1 << 20)),
            (check_int_arg, "context", dict(lo=1, hi=1 << 20)),
            (check_int_arg, "warmup_steps", dict(lo=0, hi=10**9, fix="--warmup 0 turns warmup off")),
            (check_int_arg, "eval_interval", dict(lo=1, hi=10**9, none_ok=True, fix="e.g. --eval-interval 100")),
            (check_int_arg, "log_interval", dict(lo=1, hi=10**9)),
            (check_float_arg, "lr", dict(lo=0.0, lo_open=True, hi=10.0, fix="e.g. 3e-3")),
            (
                check_float_arg,
                "min_lr",
                dict(
                    lo=0.0,
                    hi=bound_from(self.lr),
                    fix="--min-lr ends the cosine, at most --lr",
                ),
            ),
            (check_float_arg, "weight_decay", dict(lo=0.0, hi=1e3, fix="e.g. --weight-decay 0.01")),
            (check_float_arg, "grad_clip", dict(lo=0.0, fix="0 disables clipping")),
            (check_float_arg, "dropout", dict(lo=0.0, hi=1.0, hi_open=True, none_ok=True, fix="e.g. --dropout 0.1")),
            (check_seed, "seed", {}),
        ]
        for check, name, limits in checks:
            try:
                check(name, getattr(self, name), **limits)
            except TokvecError as e:
                problems.append(str(e))
        if problems:
            raise TokvecValueError("bad classifier config: " + "; ".join(problems))
        self._check_model_early()
        return self

    def _check_model_early(self) -> None:
        """The classifier these settings describe, with the smallest vocabulary its tokenizer could
        give: a shape that cannot work (heads that do not divide d_model) or an impossible size is
        refused before the CSV is read or a tokenizer trained."""
        from ..tokenizers.build import smallest_vocab_size

        self.model_config(smallest_vocab_size(self.tokenizer)).check_memory(self.batch_size, what="a classifier")

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The ModelConfig of this classifier: the set model fields, ``context`` as the context length."""
        return ModelConfig(**{**model_overrides(self), "vocab_size": vocab_size, "context_length": self.context})

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(
            max_steps=self.max_steps,
            grad_accum=1,
            grad_clip=self.grad_clip,
            log_interval=self.log_interval,
            eval_interval=self.eval_interval,
            lr_at=lambda step: warmup_cosine(
                step, lr=self.lr, min_lr=self.min_lr, warmup=self.warmup_steps, max_steps=self.max_steps
            ),
            dropout_seed=self.seed,
            lr_hint=f"Lower --lr (now {self.lr:g}) or check the CSV",
        )


@dataclass
class ClassifyResult:
    run_dir: Path
    labels: list[str]
    train_accuracy: float
    val_accuracy: Optional[float]
    losses: list[float]  # this call's per-step training losses (a resumed run: from its start step on)
    classifier: "Classifier"
    step: int = 0
    start_step: int = 0  # > 0: resumed from the checkpoint of that step
    metrics: list[dict] = dataclasses.field(default_factory=list)  # metrics.jsonl's records, all of the run


def read_labelled_csv(
    path: str | os.PathLike, *, text_column: str = "text", label_column: str = "label", encoding: str = "utf-8"
) -> tuple[list[str], list[str]]:
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
                raise FormatError(
                    f"{path} has no column {', '.join(map(repr, missing))}; its header is "
                    f"{columns}; name the columns with --text-column / --label-column"
                )
            texts, labels = [], []
            for line, row in enumerate(reader, start=2):
                label = (row.get(label_column) or "").strip()
                if not label:
                    raise FormatError(f"{path} line {line}: empty {label_column!r}; every row needs a label")
                texts.append(row.get(text_column) or "")
                labels.append(label)
    except UnicodeDecodeError as e:
        raise TokvecValueError(
            f"{path} is not valid {encoding} at byte offset {e.start}; pass --encoding "
            f"(e.g. --encoding gb18030 for a GBK Chinese file)"
        ) from None
    if len(set(labels)) < 2:
        raise TokvecValueError(
            f"{path} has {len(labels)} rows but {len(set(labels))} distinct label(s) "
            f"{sorted(set(labels))}; a classifier needs at least 2"
        )
    return texts, labels


class Classifier:
    """A trained SequenceClassifier with its tokenizer and label names: ``predict(texts)``."""

    def __init__(self, model, tokenizer, labels: Sequence[str], context: int) -> None:
        self.model, self.tokenizer, self.labels, self.context = model.eval(), tokenizer, list(labels), context

    def batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids (b, s) and their padding mask (b, s), True at padding."""
        return pad_batch([self.tokenizer.encode(t)[: self.context] for t in texts], self.tokenizer.pad_id or 0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), n_classes) class probabilities, on the CPU."""
        ids, mask = self.batch(texts)
        logits, _ = self.model(to_device(ids, self.device), padding_mask=to_device(mask, self.device))
        return logits.softmax(-1).cpu()

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
    mask[:, 0] &= torch.tensor([len(r) > 0 for r in rows], dtype=torch.bool)  # an empty text: one pad token
    return ids, mask


def _accuracy(clf: Classifier, texts: Sequence[str], labels: Sequence[int], batch_size: int = 64) -> float:
    right = 0
    for i in range(0, len(texts), batch_size):
        pred = clf.probabilities(texts[i : i + batch_size]).argmax(-1)
        right += int((pred == torch.tensor(labels[i : i + batch_size])).sum())
    return right / max(1, len(texts))


def train_classifier(
    config: ClassifyConfig, *, progress: Callable[[int, int, dict], None] | None = None
) -> ClassifyResult:
    """Train a classifier on the CSV ``config.csv``; the run goes to ``config.out``.

    Rows are shuffled by the seed and split: the last ``val_fraction`` is held out for accuracy.
    It trains in the loop LM training uses (:class:`~tokvec.runs.loop.TrainingLoop`):
    ``progress(step, max_steps, info)`` is called after every step, with ``loss`` every
    ``log_interval`` steps and ``train_accuracy`` / ``val_accuracy`` at evals. Every eval commits a
    checkpoint the way LM runs are committed (a kill -9 leaves the previous one); every logged step
    appends a line to ``metrics.jsonl``. ``config.out`` must be new, empty, or (with ``force``) hold
    a classifier run; it is locked while the run trains. ``config.resume`` continues the run in
    ``config.out`` from its last checkpoint (see :meth:`ClassifyConfig.for_resume`).
    """
    config = with_absolute_paths(config.validate(), ("csv", "out"))
    if config.resume:
        _check_resumable(Path(config.out))
    inputs = [config.csv] + ([config.tokenizer] if names_a_file(config.tokenizer) else [])
    with RunClaim(config.out, "classifier", resume=config.resume, force=config.force, inputs=inputs):
        return _train_classifier(config, progress)


def _check_resumable(run_dir: Path) -> None:
    """Refuse to resume a directory that holds no classifier checkpoint (another kind of run, or none)."""
    kind = run_kind(run_dir)
    if kind in ("lm", "imported"):
        raise RunDirError(
            f"{run_dir} holds a language-model run, not a classifier; continue it with: tokvec train --resume {run_dir}"
        )
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirError(
            f"{run_dir} holds no classifier checkpoint to resume (no {CONFIG_FILE}); start it without --resume"
        )


class _Saved:
    """The checkpoint a resumed run continues: classifier.json, checked against the config and the CSV."""

    def __init__(self, run_dir: Path, config: ClassifyConfig) -> None:
        self.run_dir = run_dir
        self.meta, self.doc, self.path = _read_meta(run_dir)
        self.step = self.doc.int("step", lo=0, hi=10**12)
        if config.max_steps < self.step:
            raise TokvecValueError(
                f"max_steps {config.max_steps} is below the step of the checkpoint in {run_dir} ({self.step}); "
                f"pass --max-steps {self.step} or more"
            )
        if OPTIMIZER_FILE not in (self.meta.get("files") or {}):
            raise ckpt.CheckpointError(
                f"{run_dir} was saved without optimizer state (by a tokvec before classifier runs could "
                f"resume), so it cannot be continued exactly; start it over with --force"
            )
        diffs = []
        saved_train = self.doc.obj("train").data
        for key, value in dataclasses.asdict(config).items():
            if key in RESUMABLE or key not in saved_train or saved_train[key] == value:
                continue
            diffs.append(f"{key}: checkpoint {saved_train[key]!r}, now {value!r}")
        ckpt.refuse_changed_flags(run_dir, diffs)
        self.doc.obj("tokenizer").str("fingerprint")  # checked here: tokenizer() compares the file with it
        self.csv_sha256 = self.doc.obj("data").str("sha256", nonempty=True)
        csv_path = Path(config.csv)
        if not csv_path.is_file():
            raise FileNotFoundError(
                f"the CSV {csv_path} this run trained on is missing; restore it, or pass --csv with its new place"
            )
        now = file_sha256(csv_path)
        if now != self.csv_sha256:
            raise TokvecValueError(
                f"the CSV {csv_path} changed since the run in {run_dir} started (sha256 {self.csv_sha256[:16]}..., "
                f"now {now[:16]}...); restore the original to resume, or start a new run with --force"
            )

    def tokenizer(self):
        """The run's own tokenizer.json, checked against the fingerprint classifier.json records."""
        return ckpt.load_run_tokenizer(self.run_dir, self.meta, config_name=CONFIG_FILE)


@dataclass
class _Rows:
    """Labelled texts as padded ids: ids (n, width) right-padded, lengths (n,), labels (n,), all on the CPU."""

    texts: list[str]
    ids: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def encode(cls, tokenizer, texts: list[str], labels: list[int], context: int) -> "_Rows":
        rows = [tokenizer.encode(t)[:context] for t in texts]
        ids, _ = pad_batch(rows, tokenizer.pad_id or 0)
        return cls(
            texts, ids, torch.tensor([len(r) for r in rows], dtype=torch.long), torch.tensor(labels, dtype=torch.long)
        )

    def batch(self, pick: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids (b, s), padding mask (b, s) True at padding (as :func:`pad_batch`), labels (b,) of rows ``pick``."""
        lengths = self.lengths[pick]
        width = max(1, int(lengths.max()))  # a CPU tensor: no device sync
        ids = self.ids[pick, :width]
        mask = torch.arange(width) >= lengths.clamp(min=1).unsqueeze(1)  # an empty text reads as one pad token
        return ids, mask, self.labels[pick]


def _train_classifier(config: ClassifyConfig, progress) -> ClassifyResult:
    from ..model import SequenceClassifier
    from ..tokenizers import build_tokenizer

    run_dir = Path(config.out)
    saved = _Saved(run_dir, config) if config.resume else None
    csv_sha256 = saved.csv_sha256 if saved is not None else file_sha256(Path(config.csv))
    texts, names = read_labelled_csv(
        config.csv, text_column=config.text_column, label_column=config.label_column, encoding=config.encoding
    )
    labels = sorted(set(names))
    y_all = [labels.index(n) for n in names]
    order = list(range(len(texts)))
    random.Random(config.seed).shuffle(order)
    n_val = int(round(len(order) * config.val_fraction))
    train_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val :]
    if saved is not None:
        tokenizer = saved.tokenizer()
    else:
        tokenizer = build_tokenizer(config.tokenizer, "\n".join(texts[i] for i in train_idx))
    train_rows, val_rows = (
        _Rows.encode(tokenizer, [texts[i] for i in idx], [y_all[i] for i in idx], config.context)
        for idx in (train_idx, val_idx)
    )
    model_cfg = config.model_config(tokenizer.vocab_size)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = SequenceClassifier(model_cfg, len(labels), pooling=config.pooling)
    metrics: list[dict] = []
    if saved is not None:
        # the CSV is the same (its sha256), so are the labels and the model; a damaged file raises here
        _read_weights(run_dir, saved.doc, model)
        metrics = [r for r in ckpt.read_metrics(run_dir, strict=False) if r.get("step", 0) <= saved.step]
    model.to(device)
    clf = Classifier(model, tokenizer, labels, config.context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if saved is not None:
        ckpt.load_optimizer(run_dir, optimizer, saved.meta, config_name=CONFIG_FILE)
    # a resumed run drops the lines logged after its checkpoint (and a line a crash tore)
    ckpt.write_metrics(run_dir, metrics)
    trainee = Trainee(model=model, optimizer=optimizer, ctx=dist_.DistContext(device=device))
    task = _ClassifierTask(config, clf, train_rows, val_rows, model_cfg.to_dict(), csv_sha256, metrics)
    if saved is not None:
        task.accuracy = {
            k: saved.meta[k] for k in ("train_accuracy", "val_accuracy") if isinstance(saved.meta.get(k), float)
        }

    def log_and_report(step: int, total: int, info: dict) -> None:
        if "loss" in info and "train_accuracy" not in info:  # an eval step's line is written by record()
            task.log(step, info)
        if progress is not None:
            progress(step, total, info)

    start_step = saved.step if saved is not None else 0
    done = TrainingLoop(
        task,
        trainee,
        config.loop_settings(),
        run_dir=run_dir,
        start_step=start_step,
        resumed=saved is not None,
        elapsed_before=float(saved.meta.get("elapsed_s") or 0.0) if saved is not None else 0.0,
        progress=log_and_report,
    ).run()
    model.eval()
    return ClassifyResult(
        run_dir=run_dir,
        labels=labels,
        train_accuracy=task.accuracy["train_accuracy"],
        val_accuracy=task.accuracy.get("val_accuracy"),
        losses=done.losses,
        classifier=clf,
        step=done.step,
        start_step=start_step,
        metrics=metrics,
    )


class _ClassifierTask:
    """Sequence classification for :class:`~tokvec.runs.loop.TrainingLoop`: random rows of the train
    split per step (drawn from (seed, step)), cross-entropy of the pooled logits, accuracy as eval."""

    throughput_key = "texts_per_s"

    def __init__(
        self,
        config: ClassifyConfig,
        clf: Classifier,
        train: _Rows,
        val: _Rows,
        model_dict: dict,
        csv_sha256: str,
        metrics: list[dict],
    ) -> None:
        self.config, self.clf, self.train, self.val, self.model_dict = config, clf, train, val, model_dict
        self.csv_sha256, self.metrics = csv_sha256, metrics
        self.items_per_step = min(config.batch_size, len(train.texts))
        self.accuracy: dict[str, float] = {}

    def log(self, step: int, info, values=None) -> None:
        """Append a line to metrics.jsonl: the step's training loss and lr (an eval adds its ``values``)."""
        record = {"step": step, "split": "train", "loss": info["loss"], "lr": info["lr"], **(values or {})}
        record["texts_per_s"] = info[self.throughput_key]
        if "elapsed_s" in info:
            record["elapsed_s"] = info["elapsed_s"]
        self.metrics.append(record)
        ckpt.append_metrics(self.config.out, [record])

    def batch(self, step: int, micro: int):
        from ..data.batches import batch_generator

        pick = torch.randint(
            0, len(self.train.texts), (self.items_per_step,), generator=batch_generator(self.config.seed, step, micro)
        )
        return tuple(to_device(t, self.clf.device) for t in self.train.batch(pick))

    def loss(self, forward: Callable, batch) -> torch.Tensor:
        ids, mask, labels = batch
        return forward(ids, labels=labels, padding_mask=mask)[1]

    def evaluate(self, trainee: Trainee) -> dict[str, float]:
        model = trainee.model
        was_training = model.training
        model.eval()
        values = {"train_accuracy": _accuracy(self.clf, self.train.texts, self.train.labels.tolist())}
        if self.val.texts:
            values["val_accuracy"] = _accuracy(self.clf, self.val.texts, self.val.labels.tolist())
        model.train(was_training)
        return values

    def record(self, step: int, values, info) -> None:
        self.accuracy = dict(values)
        self.log(step, info, values)  # before the checkpoint that follows the eval

    def save(self, step: int, weights, optimizer_state, info) -> None:
        """Commit classifier.safetensors + classifier.json (written last) as LM checkpoints are committed."""
        run_dir, tokenizer = Path(self.config.out), self.clf.tokenizer
        state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
        save_tokenizer(run_dir, tokenizer)
        blob = ({k: v.detach() for k, v in state.items()}, {})  # streamed, tensor by tensor
        commit_files(
            run_dir,
            CONFIG_FILE,
            {WEIGHTS_FILE: blob, OPTIMIZER_FILE: optimizer_tensors(optimizer_state)},
            {
                "format": FORMAT,
                "version": VERSION,
                "model": self.model_dict,
                "pooling": self.config.pooling,
                "labels": self.clf.labels,
                "train": dataclasses.asdict(self.config),
                "n_train": len(self.train.texts),
                "n_val": len(self.val.texts),
                "train_accuracy": self.accuracy.get("train_accuracy"),
                "val_accuracy": self.accuracy.get("val_accuracy"),
                "final_loss": info["loss"],
                "step": step,
                "elapsed_s": info["elapsed_s"],
                "data": {"sha256": self.csv_sha256, "rows": len(self.train.texts) + len(self.val.texts)},
                "tokenizer": {"kind": tokenizer.kind, "fingerprint": tokenizer.fingerprint()},
            },
        )


def load_classifier(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu") -> Classifier:
    """The classifier saved by :func:`train_classifier` in ``run_dir`` (no unpickling), on ``device``."""
    from ..model import SequenceClassifier
    from ..model.classifier import POOLINGS
    from ..tokenizers import load_tokenizer

    run_dir = Path(run_dir)
    meta, doc, path = _read_meta(run_dir)
    labels = doc.str_list("labels", unique=True)
    if len(labels) < 2:
        raise doc.error("labels", "a list of at least 2 label names", labels)
    pooling = doc.str("pooling", choices=POOLINGS)
    try:
        model_cfg = ModelConfig.from_dict(doc.obj("model").data)
        model_cfg.check_memory(what="the classifier it describes")
    except TokvecValueError as e:
        raise FormatError(f"{path}: 'model' is not a valid model config: {e}") from None
    model = SequenceClassifier(model_cfg, len(labels), pooling=pooling)
    _read_weights(run_dir, doc, model)
    model.to(resolve_device(device))
    tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    if tokenizer.vocab_size != model_cfg.vocab_size:
        raise FormatError(
            f"{run_dir / TOKENIZER_FILE} has vocab_size {tokenizer.vocab_size} but {path} says "
            f"{model_cfg.vocab_size}; the tokenizer file was replaced"
        )
    return Classifier(model, tokenizer, labels, model_cfg.context_length)


def checkpoint_step(run_dir: str | os.PathLike) -> Optional[int]:
    """The step of the classifier checkpoint in ``run_dir``; None when there is none (or it is damaged)."""
    try:
        step = _read_meta(Path(run_dir))[0].get("step")
    except (TokvecError, OSError):
        return None
    return step if isinstance(step, int) else None


def _read_meta(run_dir: Path) -> tuple[dict, Doc, Path]:
    """classifier.json of ``run_dir``: its format, version and checksum checked."""
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"no classifier run at {run_dir} ({CONFIG_FILE} missing); "
            f"train one with: tokvec classify train --csv FILE --out {run_dir}"
        )
    path = run_dir / CONFIG_FILE
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise FormatError(f"{path} is not a {FORMAT} version {VERSION} file")
    check_config_checksum(meta, path)
    return meta, Doc(meta, str(path)), path


def _read_weights(run_dir: Path, doc: Doc, model: torch.nn.Module) -> None:
    """Read the committed classifier.safetensors straight into ``model``'s parameters, checked against
    its sha256 in classifier.json (or, in a run written before classifiers were committed like LM runs,
    the file as it is). On an error the model holds part of a damaged file: it is discarded."""
    if "files" in doc.data:
        doc.obj("files").missing((WEIGHTS_FILE,))
        expected = committed_files(doc, (WEIGHTS_FILE, OPTIMIZER_FILE))[WEIGHTS_FILE]
        read_committed(run_dir, WEIGHTS_FILE, expected, lambda f: module_targets(model, f, CONFIG_FILE), CONFIG_FILE)
        return
    path = run_dir / WEIGHTS_FILE
    if not path.is_file():
        raise FormatError(f"{path} is missing; the classifier run in {run_dir} is incomplete")
    with TensorFile(path) as f:
        f.load(module_targets(model, f, CONFIG_FILE))


__all__ = [
    "ClassifyConfig",
    "ClassifyResult",
    "Classifier",
    "train_classifier",
    "load_classifier",
    "checkpoint_step",
    "read_labelled_csv",
    "pad_batch",
]
