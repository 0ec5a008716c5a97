"""The training loop: learning, determinism, exact resume, crashes, interrupts, divergence, the CLI."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tokvec.errors import TokvecValueError, TokvecWarning
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.train import TrainConfig, TrainingDivergedError, train
from tokvec.tokenizers import build_tokenizer

SRC = Path(__file__).resolve().parents[1] / "src"
SHAKESPEARE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12


def tiny(tmp_path, corpus_text=SHAKESPEARE, **overrides):
    """A 1-2 layer, d 32 model on a small file: a step takes milliseconds."""
    corpus = tmp_path / "corpus.txt"
    if not corpus.exists():
        corpus.write_text(corpus_text, encoding="utf-8")
    fields = dict(
        corpus=str(corpus),
        tokenizer="char",
        d_model=32,
        n_layers=2,
        n_heads=2,
        context_length=16,
        batch_size=4,
        max_steps=12,
        eval_interval=3,
        eval_batches=2,
        lr=3e-3,
        seed=7,
        threads=1,
        out=str(tmp_path / "run"),
    )
    return TrainConfig(**{**fields, **overrides})


def curve(metrics):
    """The loss curve of metrics.jsonl, without the timing fields."""
    return [(m["step"], m["split"], m["loss"], m["lr"]) for m in metrics]


@pytest.mark.slow
def test_tiny_model_learns_repeated_text_to_near_zero_loss(tmp_path):
    # every character determines the next one: a model that learns drives the loss to ~0
    result = train(
        tiny(
            tmp_path,
            "abcdefghijklmnopqrstuvwxyz0123456789" * 150,
            max_steps=60,
            eval_interval=30,
            batch_size=16,
            lr=1e-2,
        )
    )
    assert result.losses[0] > 3.0  # ~ln(40): the untrained model guesses
    assert result.val_loss < 0.05 and result.train_loss < 0.05
    assert result.step == 60 and result.tokens_per_s > 0


@pytest.mark.slow
def test_same_seed_same_run_other_seed_other_run(tmp_path):
    a = train(tiny(tmp_path, max_steps=6, out=str(tmp_path / "a")))
    b = train(tiny(tmp_path, max_steps=6, out=str(tmp_path / "b")))
    c = train(tiny(tmp_path, max_steps=6, out=str(tmp_path / "c"), seed=8))
    assert a.losses == b.losses and a.losses != c.losses
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_metrics_log_and_run_dir(tmp_path):
    result = train(tiny(tmp_path, max_steps=6))
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in records] == [(3, "train"), (3, "val"), (6, "train"), (6, "val")]
    assert set(records[0]) == {"step", "split", "loss", "lr", "tokens_per_s", "elapsed_s"}
    assert records[-1]["loss"] == pytest.approx(result.val_loss)
    config = json.loads((run / "config.json").read_text())
    assert config["step"] == 6 and config["data"]["position"] == 6
    assert config["model"]["d_model"] == 32 and config["train"]["lr"] == 3e-3
    # lr: warmup of min(100, 6 // 10) = 0 steps, then cosine from 3e-3 to 3e-4 over 6 steps
    cfg = tiny(tmp_path, max_steps=6)
    assert [cfg.lr_at(s) for s in (0, 3, 6)] == pytest.approx([3e-3, 3e-4 + 0.5 * 2.7e-3, 3e-4])


@pytest.mark.parametrize("grad_clip", [0.25, 0.0])
def test_the_loop_clips_gradients_to_grad_clip(tmp_path, monkeypatch, grad_clip):
    # Adam's first step is scale-invariant, so a loss curve barely shows clipping (its removal once
    # moved a loss by 0.004): watch the clipping call itself, leaving its effect in place.
    real = torch.nn.utils.clip_grad_norm_
    calls = []

    def spy(parameters, max_norm, *args, **kwargs):
        params = [p for p in parameters if p.grad is not None]
        before = real(params, float("inf"))  # the norm, unchanged
        out = real(params, max_norm, *args, **kwargs)
        after = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
        calls.append((max_norm, float(before), after))
        return out

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train(tiny(tmp_path, max_steps=3, eval_interval=3, lr=1e-2, grad_clip=grad_clip))
    if grad_clip == 0:
        assert calls == []  # 0 disables clipping
        return
    assert [c[0] for c in calls] == [grad_clip] * 3  # once per optimizer step, with the configured max_norm
    assert all(before > grad_clip for _, before, _ in calls)  # the norms here are above it, so it bites
    assert all(after == pytest.approx(grad_clip, rel=1e-4) for _, _, after in calls)


@pytest.mark.slow
def test_resume_gives_the_same_loss_curve_as_an_uninterrupted_run(tmp_path):
    full = train(tiny(tmp_path, out=str(tmp_path / "full")))

    def stop_at_7(step, total, info):
        if step == 7:  # not a checkpoint step: Ctrl-C must save step 7 itself
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even when run as a background job
    try:
        with pytest.raises(KeyboardInterrupt, match="interrupted after step 7; checkpoint saved"):
            train(tiny(tmp_path, out=str(tmp_path / "cut")), progress=stop_at_7)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert ckpt.read_run_config(tmp_path / "cut")["step"] == 7
    resumed = train(TrainConfig.for_resume(str(tmp_path / "cut")))
    assert resumed.start_step == 7 and resumed.step == 12
    assert resumed.losses == full.losses[7:]
    assert curve(resumed.metrics) == curve(full.metrics)
    x = torch.arange(16).unsqueeze(0)
    assert torch.equal(resumed.model(x)[0], full.model(x)[0])


def test_resume_with_dropout_is_bit_exact_whatever_the_global_rng(tmp_path):
    # checkpoints keep no RNG state: dropout and batches are drawn from (seed, step) at every step
    full = train(tiny(tmp_path, max_steps=5, dropout=0.3, out=str(tmp_path / "full")))

    def stop_at_2(step, total, info):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path, max_steps=5, dropout=0.3, out=str(tmp_path / "cut")), progress=stop_at_2)
    torch.manual_seed(12345)  # whatever the process did in between
    torch.rand(7)
    resumed = train(TrainConfig.for_resume(str(tmp_path / "cut")))
    assert resumed.start_step == 2 and resumed.losses == full.losses[2:]
    for (name, p), q in zip(resumed.model.state_dict().items(), full.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_keyboard_interrupt_from_callback_saves_then_reraises(tmp_path):
    def interrupt(step, total, info):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path), progress=interrupt)
    assert ckpt.read_run_config(tmp_path / "run")["step"] == 2
    ckpt.load_run(tmp_path / "run")  # complete and readable


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, error_says):
    holder = {}

    def poison(step, total, info):
        if step == 4:
            with torch.no_grad():
                next(holder["model"].parameters()).fill_(float("nan"))

    import tokvec.model.gpt as gpt

    real_init = gpt.GPT.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        holder["model"] = self

    gpt.GPT.__init__ = init
    try:
        with error_says(TrainingDivergedError, "loss is nan", "step 5", "checkpoint (step 3)", "is kept"):
            train(tiny(tmp_path), progress=poison)
    finally:
        gpt.GPT.__init__ = real_init
    model, _, config = ckpt.load_run(tmp_path / "run")
    assert config["step"] == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_resume_errors(tmp_path, error_says):
    with pytest.raises(TokvecValueError, match="holds no checkpoint to resume"):
        (tmp_path / "empty").mkdir()
        train(tiny(tmp_path, out=str(tmp_path / "empty"), resume=True))
    train(tiny(tmp_path, max_steps=3))
    with error_says(TokvecValueError, "already holds a lm run", "--resume", "--force"):
        train(tiny(tmp_path, max_steps=3))
    config = TrainConfig.for_resume(str(tmp_path / "run"), lr=0.5, n_layers=3, max_steps=6)
    with error_says(TokvecValueError, "lr: checkpoint 0.003, now 0.5", "n_layers: checkpoint 2, now 3"):
        train(config)
    # the corpus changed: the run resumes on the ids it saved, and says so
    (tmp_path / "corpus.txt").write_text(SHAKESPEARE + "more text", encoding="utf-8")
    with error_says(TokvecWarning, "corpus.txt", "changed", "resuming on", warns=True):
        assert train(TrainConfig.for_resume(str(tmp_path / "run"), max_steps=4)).step == 4
    # ... unless those ids are gone too: then the corpus cannot stand in for them
    (tmp_path / "run" / "tokens.bin").unlink()
    with pytest.raises(TokvecValueError, match=r"corpus: checkpoint \d+ tokens"):
        train(TrainConfig.for_resume(str(tmp_path / "run"), max_steps=6))


def test_bad_inputs(tmp_path, error_says):
    with error_says(TokvecValueError, "9 tokens", "context 16", "at least 34 tokens"):
        train(tiny(tmp_path, "too short"))
    with error_says(TokvecValueError, "max_steps", "[1, 1000000000000]", "got 0", "lr", "(0.0, 1000.0]", "got -1"):
        train(tiny(tmp_path, max_steps=0, lr=-1))
    with error_says(TokvecValueError, "'bpe:x'", "bpe:N", "vocabulary size"):
        build_tokenizer("bpe:x", "text")
    with error_says(TokvecValueError, "'nope'", "char", "word", "bpe:N"):
        build_tokenizer("nope", "text")


def test_grad_accumulation_and_bf16_run(tmp_path):
    result = train(tiny(tmp_path, max_steps=3, grad_accum=2, bf16=True))
    assert result.step == 3 and all(math.isfinite(v) for v in result.losses)
    assert result.metrics[-1]["tokens_per_s"] > 0


@pytest.mark.slow
def test_kill_9_mid_training_then_resume_continues_from_last_checkpoint(tmp_path):
    (tmp_path / "corpus.txt").write_text(SHAKESPEARE, encoding="utf-8")
    args = [
        "--corpus",
        str(tmp_path / "corpus.txt"),
        "--tokenizer",
        "char",
        "--d-model",
        "32",
        "--layers",
        "2",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch-size",
        "4",
        "--max-steps",
        "40",
        "--eval-interval",
        "2",
        "--lr",
        "3e-3",
        "--seed",
        "7",
        "--threads",
        "1",
    ]
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokvec", "train", *args, "--out", str(run)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300  # a loaded machine can take a minute just to import torch
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((run / "config.json").read_text())["step"] >= 4:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()}"
    proc.kill()  # SIGKILL: no handler runs, possibly in the middle of a save
    proc.wait()
    saved = ckpt.read_run_config(run)["step"]
    assert saved >= 4 and saved % 2 == 0  # only whole checkpoints
    ckpt.load_run(run)  # nothing torn
    resumed = train(TrainConfig.for_resume(str(run)))
    assert resumed.start_step == saved and resumed.step == 40
    saved_train = ckpt.read_run_config(run)["train"]
    full = train(TrainConfig.from_dict({**saved_train, "out": str(tmp_path / "full"), "resume": False}))
    assert curve(resumed.metrics) == curve(full.metrics)
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (tmp_path / "full").iterdir())


@pytest.mark.slow
def test_cli_end_to_end(tmp_path, cli):
    corpus = tmp_path / "small.txt"
    corpus.write_text(SHAKESPEARE, encoding="utf-8")
    run = tmp_path / "cli-run"
    base = [
        "train",
        "--corpus",
        str(corpus),
        "--tokenizer",
        "char",
        "--d-model",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch-size",
        "4",
        "--eval-interval",
        "3",
        "--threads",
        "1",
    ]
    code, out, _ = cli(*base, "--max-steps", "6", "--out", run, "--sample", "20")
    assert code == 0
    assert "step      3  train" in out and "step      6  train" in out and "--- sample (temperature 0.8" in out
    assert "val loss " in out and "(uniform guess over " in out  # the loss next to a baseline
    assert ckpt.read_run_config(run)["step"] == 6
    assert cli("train", "--resume", run, "--max-steps", "9").code == 0 and ckpt.read_run_config(run)["step"] == 9
    code, _, err = cli("train", "--resume", run, "--lr", "0.1")
    assert code == 2
    assert "tokvec: error: the checkpoint in" in err and "lr: checkpoint 0.001, now 0.1" in err
    code, _, err = cli("train", "--resume", tmp_path / "nothing")
    assert code == 2 and "no run directory at" in err
