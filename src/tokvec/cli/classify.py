"""`tokvec classify train|predict`: a sequence classifier on the same embeddings and blocks."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app, out, progress_bar

classify_app = typer.Typer(help="Sequence classification on the same embeddings and blocks (CSV of text,label).",
                           no_args_is_help=True)
app.add_typer(classify_app, name="classify")


@classify_app.command("train")
def classify_train(
    csv_path: Path = typer.Option(..., "--csv", help="CSV with a header; one text and one label per row."),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("label", "--label-column"),
    encoding: str = typer.Option("utf-8", "--encoding", help="Text encoding of the CSV."),
    tokenizer: str = typer.Option("char", "--tokenizer", "-t", help="char, word or a saved tokenizer file."),
    positional: str = typer.Option("learned", "--positional"),
    d_model: int = typer.Option(64, "--d-model"),
    layers: int = typer.Option(2, "--layers"),
    heads: int = typer.Option(4, "--heads"),
    context: int = typer.Option(128, "--context", help="Texts are cut to this many tokens."),
    pooling: str = typer.Option("last", "--pooling", help="last (default), mean or first."),
    max_steps: int = typer.Option(300, "--max-steps"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(3e-3, "--lr"),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Rows held out for accuracy."),
    seed: int = typer.Option(1337, "--seed"),
    out_dir: Path = typer.Option(Path("runs/classifier"), "--out"),
) -> None:
    """Train a sequence classifier on labelled text; prints train/val accuracy."""
    from ..runs.classify import ClassifyConfig, train_classifier

    config = ClassifyConfig(csv=str(csv_path), text_column=text_column, label_column=label_column, encoding=encoding,
                            tokenizer=tokenizer, positional=positional, d_model=d_model, n_layers=layers,
                            n_heads=heads, context=context, pooling=pooling, max_steps=max_steps,
                            batch_size=batch_size, lr=lr, val_fraction=val_fraction, seed=seed, out=str(out_dir))
    with progress_bar(max_steps, "classifier") as advance:
        result = train_classifier(config, progress=lambda step, total, info: advance(
            1, description=f"loss {info['loss']:.3f}"))
    val = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.3f}"
    out.print(f"done: {len(result.labels)} labels {result.labels}  train accuracy {result.train_accuracy:.3f}  "
              f"val accuracy {val}  final loss {result.losses[-1]:.4f}  -> {result.run_dir}", markup=False,
              soft_wrap=True)


@classify_app.command("predict")
def classify_predict(
    texts: list[str] = typer.Argument(..., help="Texts to classify."),
    run: Path = typer.Option(..., "--run", help="A run written by tokvec classify train."),
) -> None:
    """Print the predicted label and its probability for each text."""
    from ..runs.classify import load_classifier

    clf = load_classifier(run)
    probs = clf.probabilities(texts)
    for text, p in zip(texts, probs):
        i = int(p.argmax())
        out.print(f"{clf.labels[i]}  {float(p[i]):.3f}  {text}", markup=False, soft_wrap=True)
