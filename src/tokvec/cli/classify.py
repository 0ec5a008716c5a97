"""`tokvec classify train|predict`: a sequence classifier on the same embeddings and blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import (
    DEVICE_HELP,
    CLIError,
    announce_device,
    app,
    check_resume_flags,
    in_flag_names,
    out,
    progress_bar,
    resolve_device_flag,
    stop_interrupted,
)

classify_app = typer.Typer(
    help="Sequence classification on the same embeddings and blocks (CSV of text,label).", no_args_is_help=True
)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
def classify_train(
    csv_path: Optional[Path] = typer.Option(
        None, "--csv", help="CSV with a header; one text and one label per row (required unless --resume)."
    ),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="(text)"),
    label_column: Optional[str] = typer.Option(None, "--label-column", help="(label)"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="Text encoding of the CSV (utf-8)."),
    tokenizer: Optional[str] = typer.Option(
        None, "--tokenizer", "-t", help="char, word or a saved tokenizer file (char)."
    ),
    positional: Optional[str] = typer.Option(None, "--positional", help="(learned)"),
    d_model: Optional[int] = typer.Option(None, "--d-model", help="(64)"),
    layers: Optional[int] = typer.Option(None, "--layers", help="(2)"),
    heads: Optional[int] = typer.Option(None, "--heads", help="(4)"),
    context: Optional[int] = typer.Option(None, "--context", help="Texts are cut to this many tokens (128)."),
    pooling: Optional[str] = typer.Option(None, "--pooling", help="last (default), mean or first."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout in [0, 1) (0)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="(300)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="(16)"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (3e-3)."),
    min_lr: Optional[float] = typer.Option(None, "--min-lr", help="Learning rate at the end of the cosine (0)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Linear warmup steps before the cosine (0)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (0.01)."),
    eval_interval: Optional[int] = typer.Option(
        None, "--eval-interval", help="Accuracy + checkpoint every N steps (after the last step only)."
    ),
    log_interval: Optional[int] = typer.Option(
        None, "--log-interval", help="Read the loss back and log a line to metrics.jsonl every N steps (10)."
    ),
    val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="Rows held out for accuracy (0.2)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="(1337)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (runs/classifier)."),
    force: bool = typer.Option(False, "--force", help="Replace the classifier already in --out."),
    resume: Optional[Path] = typer.Option(
        None,
        "--resume",
        help="Continue the classifier run in this directory from its last checkpoint (same CSV; "
        "only --max-steps, --eval-interval, --log-interval, --device and --csv, if the file moved, may change).",
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Train a sequence classifier on labelled text; prints train/val accuracy. Every eval commits a
    checkpoint (weights + optimizer state) and every logged step a line of metrics.jsonl; a stopped
    run continues with --resume DIR."""
    from ..runs.classify import ClassifyConfig, train_classifier

    given = dict(
        text_column=text_column,
        label_column=label_column,
        encoding=encoding,
        tokenizer=tokenizer,
        positional=positional,
        d_model=d_model,
        n_layers=layers,
        n_heads=heads,
        context=context,
        pooling=pooling,
        dropout=dropout,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        min_lr=min_lr,
        warmup_steps=warmup,
        weight_decay=weight_decay,
        eval_interval=eval_interval,
        log_interval=log_interval,
        val_fraction=val_fraction,
        seed=seed,
    )
    flags = {k: v for k, v in given.items() if v is not None}
    if csv_path is not None:
        flags["csv"] = str(csv_path)
    check_resume_flags(resume, out_dir, force)
    if resume is None and csv_path is None:
        raise CLIError("--csv is missing: name the CSV of text,label rows to train on (or --resume DIR)")
    with in_flag_names(given):  # errors name --warmup, --heads, ..., what the user typed
        if resume is not None:
            config = ClassifyConfig.for_resume(str(resume), **flags)
        else:
            config = ClassifyConfig(out=str(out_dir or ClassifyConfig.out), force=force, **flags)
        config.validate()
    config.device = str(resolve_device_flag(device, "classify train", announce=False))
    last = {"step": 0}
    with progress_bar(config.max_steps, "classifier") as advance:

        def progress(step: int, total: int, info: dict) -> None:
            if last["step"] == 0 and step > 1:
                advance(step - 1)  # a resumed run starts part-way
            advance(1, description=f"loss {info['loss']:.3f}" if "loss" in info else None)
            last["step"] = step

        try:
            result = train_classifier(config, progress=progress)
        except KeyboardInterrupt:
            from ..runs.classify import checkpoint_step

            stop_interrupted(last["step"], config.out, checkpoint_step(config.out), "tokvec classify train")
    announce_device(device, result.classifier.model, "classify train")
    val = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.3f}"
    loss = f"{result.losses[-1]:.4f}" if result.losses else "n/a (nothing left to train)"
    resumed = f"resumed at step {result.start_step}, now step {result.step}; " if result.start_step else ""
    out.print(
        f"done: {resumed}{len(result.labels)} labels {result.labels}  train accuracy "
        f"{result.train_accuracy:.3f}  val accuracy {val}  final loss {loss}  -> {result.run_dir}",
        markup=False,
        soft_wrap=True,
    )


@classify_app.command("predict")
def classify_predict(
    texts: list[str] = typer.Argument(..., help="Texts to classify."),
    run: Path = typer.Option(..., "--run", help="A run written by tokvec classify train."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Print the predicted label and its probability for each text."""
    from ..runs.classify import load_classifier

    where = resolve_device_flag(device, "classify predict", announce=False)
    clf = load_classifier(run, device=where)
    announce_device(device, where, "classify predict")
    probs = clf.probabilities(texts)
    for text, p in zip(texts, probs):
        i = int(p.argmax())
        out.print(f"{clf.labels[i]}  {float(p[i]):.3f}  {text}", markup=False, soft_wrap=True)
