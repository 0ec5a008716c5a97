"""Classifier runs: metrics.jsonl and --resume (bit-exact, as LM runs), and what a resume refuses."""

import json
import math
import random

import pytest
import torch

from tokvec.errors import RunDirError, TokvecValueError
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.classify import ClassifyConfig, load_classifier, train_classifier
from tokvec.runs.loop import warmup_cosine

TIMING = ("texts_per_s", "elapsed_s")  # the only values of a line that depend on the machine's speed


@pytest.fixture
def labelled(tmp_path):
    """40 rows whose label is carried by one character among filler."""
    rng = random.Random(1)
    lines = ["text,label"]
    for _ in range(40):
        label = rng.choice(["pos", "neg"])
        filler = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 8)))
        lines.append(f"{filler}{'y' if label == 'pos' else 'n'},{label}")
    path = tmp_path / "rows.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny(csv, out, **overrides):
    fields = dict(
        csv=str(csv),
        out=str(out),
        d_model=16,
        n_layers=1,
        n_heads=2,
        context=12,
        batch_size=8,
        max_steps=12,
        eval_interval=4,
        log_interval=2,
        dropout=0.1,  # dropout is reseeded from (seed, step): a resume must still be bit-exact
        device="cpu",
    )
    return ClassifyConfig(**{**fields, **overrides})


def interrupted_at(step):
    def progress(done, total, info):
        if done == step:
            raise KeyboardInterrupt  # the loop saves this step, then re-raises

    return progress


def untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_metrics_jsonl_has_a_line_per_logged_step_and_the_accuracies_at_evals(labelled, tmp_path):
    result = train_classifier(tiny(labelled, tmp_path / "run"))
    lines = ckpt.read_metrics(tmp_path / "run")  # strict: the file reads as every metrics viewer reads it
    assert lines == result.metrics
    assert [r["step"] for r in lines] == [2, 4, 6, 8, 10, 12]  # log_interval 2; evals 4, 8, 12 fall on them
    for r in lines:
        assert r["split"] == "train"
        assert r["loss"] == result.losses[r["step"] - 1]  # the step's training loss, as the loop read it back
        # the lr of the optimizer step that produced the line (0-based step - 1): cosine from 3e-3 over 12 steps
        assert r["lr"] == warmup_cosine(r["step"] - 1, lr=3e-3, min_lr=0.0, warmup=0, max_steps=12)
        assert r["texts_per_s"] > 0
    assert lines[1]["lr"] == pytest.approx(3e-3 * (1 + math.cos(math.pi * 3 / 12)) / 2)
    evals = [r for r in lines if "train_accuracy" in r]
    assert [r["step"] for r in evals] == [4, 8, 12]
    assert all(0.0 <= r["train_accuracy"] <= 1.0 and 0.0 <= r["val_accuracy"] <= 1.0 for r in evals)
    assert evals[-1]["train_accuracy"] == result.train_accuracy and evals[-1]["val_accuracy"] == result.val_accuracy
    assert all("elapsed_s" in r for r in evals)


def test_resume_is_bit_exact_and_continues_the_metrics(labelled, tmp_path):
    full = train_classifier(tiny(labelled, tmp_path / "full"))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(tiny(labelled, cut), progress=interrupted_at(6))  # step 6: not an eval step
    assert json.loads((cut / "classifier.json").read_text())["step"] == 6
    # a line logged after the checkpoint, then one a crash tore: both dropped on resume
    with open(cut / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": 8, "split": "train", "loss": 9.0, "lr": 0.1}) + '\n{"step": 10, "spl')
    torch.manual_seed(12345)  # whatever the process did in between
    torch.rand(7)

    resumed = train_classifier(ClassifyConfig.for_resume(cut))
    assert resumed.start_step == 6 and resumed.step == 12
    assert resumed.losses == full.losses[6:]
    for (name, p), q in zip(resumed.classifier.model.state_dict().items(), full.classifier.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert (resumed.train_accuracy, resumed.val_accuracy) == (full.train_accuracy, full.val_accuracy)
    assert untimed(resumed.metrics) == untimed(full.metrics)
    assert untimed(ckpt.read_metrics(cut)) == untimed(ckpt.read_metrics(tmp_path / "full"))
    saved = {name: load_classifier(d).model.state_dict() for name, d in (("cut", cut), ("full", tmp_path / "full"))}
    assert all(torch.equal(saved["cut"][k], saved["full"][k]) for k in saved["full"])


def test_resume_may_extend_max_steps_and_a_finished_run_has_nothing_left(labelled, tmp_path, error_says):
    run = tmp_path / "run"
    first = train_classifier(tiny(labelled, run, max_steps=4))
    again = train_classifier(ClassifyConfig.for_resume(run))  # max_steps reached: nothing runs
    assert (again.start_step, again.step, again.losses) == (4, 4, [])
    assert again.train_accuracy == first.train_accuracy  # the accuracy of the checkpoint it continues
    with error_says(TokvecValueError, "max_steps 3", "step of the checkpoint", "(4)", "--max-steps 4 or more"):
        train_classifier(ClassifyConfig.for_resume(run, max_steps=3))
    more = train_classifier(ClassifyConfig.for_resume(run, max_steps=8))
    assert (more.start_step, more.step, len(more.losses)) == (4, 8, 4)
    assert [r["step"] for r in ckpt.read_metrics(run)] == [2, 4, 6, 8]
    assert json.loads((run / "classifier.json").read_text())["step"] == 8


def test_resume_refusals(labelled, tmp_path, error_says):
    empty = tmp_path / "empty"
    empty.mkdir()
    with error_says(RunDirError, str(empty), "no classifier checkpoint to resume", "without --resume"):
        train_classifier(tiny(labelled, empty, resume=True))
    with error_says(RunDirError, str(tmp_path / "none"), "no classifier checkpoint to resume"):
        ClassifyConfig.for_resume(tmp_path / "none")

    run = tmp_path / "run"
    train_classifier(tiny(labelled, run, max_steps=4))
    with error_says(RunDirError, "already holds a classifier run", "--resume", "--force"):
        train_classifier(tiny(labelled, run, max_steps=4))
    with error_says(TokvecValueError, "lr: checkpoint 0.003, now 0.5", "n_layers: checkpoint 1, now 2", "Drop"):
        train_classifier(ClassifyConfig.for_resume(run, lr=0.5, n_layers=2, max_steps=8))
    with error_says(RunDirError, "--resume", "--force", "only one"):
        train_classifier(tiny(labelled, run, resume=True, force=True))

    original = labelled.read_bytes()
    labelled.write_bytes(original + b"zzzy,pos\n")
    with error_says(TokvecValueError, str(labelled), "changed", "restore the original", "--force"):
        train_classifier(ClassifyConfig.for_resume(run, max_steps=8))
    moved = tmp_path / "moved.csv"
    moved.write_bytes(original)
    labelled.unlink()
    with error_says(FileNotFoundError, str(labelled), "missing", "--csv"):
        train_classifier(ClassifyConfig.for_resume(run, max_steps=8))
    assert train_classifier(ClassifyConfig.for_resume(run, csv=str(moved), max_steps=6)).step == 6  # same rows
    with error_says(TokvecValueError, "unknown classifier config keys", "['n_epochs']"):
        ClassifyConfig.for_resume(run, n_epochs=3)

    # a run saved before classifiers kept their optimizer state: it cannot continue exactly
    meta = json.loads((run / "classifier.json").read_text(encoding="utf-8"))
    del meta["files"]["optimizer.safetensors"], meta["checksum"]
    (run / "classifier.json").write_text(json.dumps(ckpt.seal_config(meta)), encoding="utf-8")
    with error_says(ckpt.CheckpointError, str(run), "without optimizer state", "--force"):
        train_classifier(ClassifyConfig.for_resume(run, csv=str(moved), max_steps=8))


def test_an_lm_run_is_not_resumed_as_a_classifier(labelled, tmp_path, error_says):
    from tokvec.runs.train import TrainConfig, train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question " * 4, encoding="utf-8")
    lm = tmp_path / "lm"
    train(
        TrainConfig(
            corpus=str(corpus), d_model=16, n_layers=1, n_heads=2, context_length=8, batch_size=2, max_steps=1,
            eval_batches=1, out=str(lm), device="cpu",
        )
    )  # fmt: skip
    with error_says(RunDirError, str(lm), "language-model run", "tokvec train --resume"):
        ClassifyConfig.for_resume(lm)
    with error_says(RunDirError, str(lm), "language-model run", "tokvec train --resume"):
        train_classifier(tiny(labelled, lm, resume=True))


def test_cli_resume_flags(labelled, tmp_path, cli):
    run = tmp_path / "run"
    base = ("classify", "train", "--d-model", "16", "--layers", "1", "--heads", "2", "--context", "12")
    r = cli(*base, "--csv", labelled, "--out", run, "--max-steps", "4", "--eval-interval", "2", "--device", "cpu")
    assert r.code == 0, r.err
    r = cli("classify", "train", "--resume", run, "--lr", "0.1")
    assert r.code == 2 and r.err.startswith("tokvec: error: ") and "lr: checkpoint 0.003, now 0.1" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = cli("classify", "train", "--resume", run, "--force")
    assert r.code == 2 and "--force" in r.err and "only one" in r.err
    r = cli("classify", "train", "--resume", run, "--out", tmp_path / "other")
    assert r.code == 2 and "drop --out" in r.err
    r = cli("classify", "train", "--resume", tmp_path / "nothing")
    assert r.code == 2 and "no classifier checkpoint to resume" in r.err
    r = cli("classify", "train", "--out", tmp_path / "x")
    assert r.code == 2 and "--csv is missing" in r.err


@pytest.mark.slow
def test_cli_resume_continues_the_run(labelled, tmp_path, cli):
    run = tmp_path / "run"
    base = ("classify", "train", "--d-model", "16", "--layers", "1", "--heads", "2", "--context", "12")
    r = cli(*base, "--csv", labelled, "--out", run, "--max-steps", "4", "--eval-interval", "2", subprocess=True)
    assert r.code == 0, r.err
    r = cli("classify", "train", "--resume", run, "--max-steps", "6", "--device", "cpu", subprocess=True)
    assert r.code == 0, r.err
    assert "done: resumed at step 4, now step 6; 2 labels ['neg', 'pos']" in r.out
    assert json.loads((run / "classifier.json").read_text())["step"] == 6
    lines = ckpt.read_metrics(run)
    assert [(r["step"], "train_accuracy" in r) for r in lines] == [(2, True), (4, True), (6, True)]
