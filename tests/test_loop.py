"""The one training loop (runs/loop.py) that LM training and the classifier share, the one commit that
both run kinds are written with, the model fields declared once, and the training flags of the CLI."""

import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tokvec.errors import FormatError, RunDirError, TokvecValueError
from tokvec.model import ModelConfig
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.classify import ClassifyConfig, load_classifier, train_classifier
from tokvec.runs.lock import LOCK_FILE, RunClaim
from tokvec.runs.loop import TrainingDivergedError, warmup_cosine
from tokvec.runs.train import MODEL_FIELDS, TrainConfig, train

SRC = Path(__file__).resolve().parents[1] / "src"
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n") * 20


def labelled_csv(path: Path, n: int = 60) -> Path:
    """Texts whose label is carried by one character (好 pos, 壞 neg) in filler."""
    rng = random.Random(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["text,label"]
    for _ in range(n):
        label = rng.choice(["pos", "neg"])
        filler = "".join(rng.choice("這部電影真的") for _ in range(rng.randint(2, 6)))
        lines.append(f"{filler}{'好' if label == 'pos' else '壞'}{filler[::-1]},{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def small_classifier(tmp_path: Path, **overrides) -> ClassifyConfig:
    fields = dict(
        csv=str(labelled_csv(tmp_path / "labels.csv")),
        d_model=16,
        n_layers=1,
        n_heads=2,
        context=16,
        batch_size=8,
        max_steps=6,
        out=str(tmp_path / "clf"),
    )
    return ClassifyConfig(**{**fields, **overrides})


# -- the schedule both tasks share ---------------------------------------------------------------
def test_warmup_cosine_is_nanogpts_and_the_classifiers_old_schedule():
    # nanoGPT get_lr: warmup lr*(it+1)/(warmup+1), cosine to min_lr at max_steps, min_lr after
    assert warmup_cosine(0, lr=1e-3, min_lr=1e-4, warmup=10, max_steps=100) == 1e-3 / 11
    assert warmup_cosine(55, lr=1e-3, min_lr=1e-4, warmup=10, max_steps=100) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert warmup_cosine(100, lr=1e-3, min_lr=1e-4, warmup=10, max_steps=100) == 1e-4
    # warmup 0 and min_lr 0 is the cosine the classifier always used: lr * (1 + cos(pi * (step - 1) / max)) / 2
    for step in range(1, 301):
        old = 3e-3 * 0.5 * (1 + math.cos(math.pi * (step - 1) / 300))
        assert warmup_cosine(step - 1, lr=3e-3, min_lr=0.0, warmup=0, max_steps=300) == pytest.approx(old, rel=1e-14)


# -- the classifier in the shared loop -----------------------------------------------------------
def test_classifier_reads_the_loss_back_only_at_log_steps_and_evals(tmp_path):
    seen = []
    result = train_classifier(
        small_classifier(tmp_path, max_steps=7, log_interval=3, eval_interval=5),
        progress=lambda step, total, info: seen.append((step, sorted(info))),
    )
    with_loss = [step for step, keys in seen if "loss" in keys]
    assert with_loss == [3, 5, 6, 7]  # log steps 3 and 6, evals (checkpoints) at 5 and 7
    assert [step for step, keys in seen if "val_accuracy" in keys] == [5, 7]
    assert all("texts_per_s" in keys and "lr" in keys for _, keys in seen)
    assert len(result.losses) == 7 and all(math.isfinite(v) for v in result.losses)
    saved = json.loads((tmp_path / "clf" / "classifier.json").read_text(encoding="utf-8"))
    assert saved["step"] == 7 and saved["final_loss"] == result.losses[-1]
    assert saved["train_accuracy"] == result.train_accuracy and saved["val_accuracy"] == result.val_accuracy


def test_classifier_runs_are_deterministic_and_use_the_schedule_and_clipping(tmp_path, monkeypatch):
    a = train_classifier(small_classifier(tmp_path / "a", warmup_steps=2, min_lr=1e-4))
    b = train_classifier(small_classifier(tmp_path / "b", warmup_steps=2, min_lr=1e-4))
    assert a.losses == b.losses
    lrs, norms = [], []
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(
        torch.nn.utils,
        "clip_grad_norm_",
        lambda params, max_norm, *a, **k: (norms.append(max_norm), real_clip(params, max_norm, *a, **k))[1],
    )
    train_classifier(
        small_classifier(tmp_path / "c", warmup_steps=2, min_lr=1e-4, grad_clip=0.5),
        progress=lambda step, total, info: lrs.append(info["lr"]),
    )
    assert norms == [0.5] * 6
    assert lrs == [warmup_cosine(s, lr=3e-3, min_lr=1e-4, warmup=2, max_steps=6) for s in range(6)]
    assert lrs[0] == 3e-3 / 3 and lrs[-1] > 1e-4


def test_a_diverging_classifier_stops_and_names_the_step_and_the_fix(tmp_path):
    def poison(step, total, info):
        if step == 2:
            with torch.no_grad():
                for p in holder:
                    p.fill_(float("nan"))

    import tokvec.model.classifier as classifier_module

    holder = []
    real_init = classifier_module.SequenceClassifier.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        holder.extend(self.parameters())

    classifier_module.SequenceClassifier.__init__ = init
    try:
        with pytest.raises(TrainingDivergedError) as info:
            train_classifier(small_classifier(tmp_path, log_interval=1, eval_interval=1), progress=poison)
    finally:
        classifier_module.SequenceClassifier.__init__ = real_init
    assert info.value.step == 3 and info.value.last_checkpoint_step == 2
    assert "loss is nan at step 3" in str(info.value) and "--lr (now 0.003)" in str(info.value)
    assert json.loads((tmp_path / "clf" / "classifier.json").read_text())["step"] == 2  # the last good one
    load_classifier(tmp_path / "clf")


def test_a_classifier_without_held_out_rows_has_no_val_accuracy(tmp_path):
    result = train_classifier(small_classifier(tmp_path, val_fraction=0.0, max_steps=2))
    assert result.val_accuracy is None and 0.0 <= result.train_accuracy <= 1.0
    meta = json.loads((tmp_path / "clf" / "classifier.json").read_text(encoding="utf-8"))
    assert (meta["n_train"], meta["n_val"], meta["val_accuracy"]) == (60, 0, None)


def test_classifier_model_fields_come_from_model_config(tmp_path):
    names = {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size", "context_length"}
    assert names <= {f.name for f in dataclasses.fields(ClassifyConfig)}
    assert ClassifyConfig().d_model == 64 and ClassifyConfig().norm is None  # its own small defaults
    train_classifier(small_classifier(tmp_path, norm="rmsnorm", activation="swiglu", bias=False, max_steps=1))
    model = json.loads((tmp_path / "clf" / "classifier.json").read_text())["model"]
    assert (model["norm"], model["activation"], model["bias"], model["d_model"], model["context_length"]) == (
        "rmsnorm",
        "swiglu",
        False,
        16,
        16,
    )


# -- one commit for both run kinds ---------------------------------------------------------------
def test_a_classifier_run_is_committed_like_an_lm_run(tmp_path):
    result = train_classifier(small_classifier(tmp_path))
    run = tmp_path / "clf"
    meta = json.loads((run / "classifier.json").read_text(encoding="utf-8"))
    weights = (run / "classifier.safetensors").read_bytes()
    moments = (run / "optimizer.safetensors").read_bytes()  # AdamW's state, stored as an LM run's
    import hashlib

    assert meta["files"] == {
        "classifier.safetensors": {"sha256": hashlib.sha256(weights).hexdigest(), "bytes": len(weights)},
        "optimizer.safetensors": {"sha256": hashlib.sha256(moments).hexdigest(), "bytes": len(moments)},
    }
    assert meta["checksum"] == ckpt.config_checksum(meta)
    assert sorted(p.name for p in run.iterdir()) == [
        LOCK_FILE,
        "classifier.json",
        "classifier.safetensors",
        "metrics.jsonl",
        "optimizer.safetensors",
        "run.json",
        "tokenizer.json",
    ]
    # killed after the commit, before the rename: the pending file holds the committed weights
    os.replace(run / "classifier.safetensors", run / ".classifier.safetensors.pending")
    (run / "classifier.safetensors").write_bytes(b"older weights")
    (run / ".classifier.json.x1y2.tmp").write_bytes(b"{")  # an atomic write killed half-way
    probe = ["這部電影好", "電影壞"]
    assert torch.equal(load_classifier(run).probabilities(probe), result.classifier.probabilities(probe))
    with RunClaim(run, "classifier", resume=True):  # the next writer settles the leftovers
        pass
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [LOCK_FILE]
    assert (run / "classifier.safetensors").read_bytes() == weights
    (run / "classifier.safetensors").write_bytes(weights[:-10])  # damaged after it was written
    with pytest.raises(FormatError, match="classifier.safetensors is truncated"):
        load_classifier(run)


def test_a_classifier_run_written_before_the_shared_commit_still_loads(tmp_path):
    """A run the way the code before the shared loop wrote it: no "files", "step" or "tokenizer" keys."""
    from safetensors.torch import save as st_save

    from tokvec._io import write_json
    from tokvec.model import SequenceClassifier
    from tokvec.tokenizers import CharTokenizer

    run = tmp_path / "old"
    run.mkdir()
    tok = CharTokenizer.train(["這部電影好壞"])
    cfg = ModelConfig(vocab_size=tok.vocab_size, context_length=16, d_model=16, n_layers=1, n_heads=2)
    torch.manual_seed(0)
    model = SequenceClassifier(cfg, 2, pooling="last")
    tok.save(run / "tokenizer.json")
    (run / "classifier.safetensors").write_bytes(st_save({k: v.contiguous() for k, v in model.state_dict().items()}))
    write_json(
        run / "classifier.json",
        ckpt.seal_config(
            {
                "format": "tokvec.classifier",
                "version": 1,
                "model": cfg.to_dict(),
                "pooling": "last",
                "labels": ["neg", "pos"],
                "train": {"csv": "x.csv"},
                "n_train": 2,
                "n_val": 0,
                "train_accuracy": 1.0,
                "val_accuracy": None,
                "final_loss": 0.1,
            }
        ),
    )
    clf = load_classifier(run)
    ids, mask = clf.batch(["電影好"])
    with torch.no_grad():
        want = model.eval()(ids, padding_mask=mask)[0].softmax(-1)
    assert torch.equal(clf.probabilities(["電影好"]), want)
    with pytest.raises(RunDirError, match="holds a classifier run"):  # kinds still refuse each other
        with RunClaim(run, "lm"):
            pass


# A `tokvec classify train` that stops (sleeps) at one moment of its step-3 commit, for the test to kill -9
# it there: "pending" = the new weights written aside, classifier.json not yet; "committed" = classifier.json
# written, the weights not yet renamed into place.
_PAUSING_CHILD = """
import sys, time
from pathlib import Path
import tokvec.runs.checkpoint as ck
phase, marker = sys.argv[1], Path(sys.argv[2])
real = ck.write_json
def write_json(path, data, *a, **k):
    stop = Path(path).name == "classifier.json" and data.get("step") == 3
    if stop and phase == "pending":
        marker.touch(); time.sleep(600)
    real(path, data, *a, **k)
    if stop and phase == "committed":
        marker.touch(); time.sleep(600)
ck.write_json = write_json
from tokvec.cli import main
main(sys.argv[3:])
"""


@pytest.mark.slow
@pytest.mark.parametrize("phase,kept_step", [("pending", 2), ("committed", 3)])
def test_kill_9_during_a_classifier_commit_leaves_a_whole_classifier(tmp_path, phase, kept_step):
    csv = labelled_csv(tmp_path / "labels.csv", n=40)
    run, marker = tmp_path / "clf", tmp_path / "paused"
    argv = [
        "classify",
        "train",
        "--csv",
        str(csv),
        "--out",
        str(run),
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch-size",
        "8",
        "--max-steps",
        "50",
        "--eval-interval",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_CHILD, phase, str(marker), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300  # a loaded machine can take a minute just to import torch
    while time.monotonic() < deadline and proc.poll() is None and not marker.exists():
        time.sleep(0.01)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)  # no handler runs: the commit is cut where it stands
    proc.wait()
    assert (run / ".classifier.safetensors.pending").is_file()  # it was killed mid-commit
    meta = json.loads((run / "classifier.json").read_text(encoding="utf-8"))
    assert meta["step"] == kept_step  # step 2 stands until step 3's commit is written, then step 3
    clf = load_classifier(run)  # whole: the weights classifier.json vouches for (sha256), from either name
    assert clf.labels == ["neg", "pos"] and clf.probabilities(["電影好"]).shape == (1, 2)
    with RunClaim(run, "classifier", resume=True):  # the next writer settles what the kill left
        pass
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [LOCK_FILE]
    reloaded = load_classifier(run)
    assert torch.equal(reloaded.probabilities(["電影壞"]), clf.probabilities(["電影壞"]))


@pytest.mark.slow
def test_kill_9_at_any_moment_of_classifier_training_leaves_a_whole_classifier(tmp_path):
    csv = labelled_csv(tmp_path / "labels.csv", n=40)
    run = tmp_path / "clf"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokvec",
            "classify",
            "train",
            "--csv",
            str(csv),
            "--out",
            str(run),
            "--d-model",
            "16",
            "--layers",
            "1",
            "--heads",
            "2",
            "--context",
            "16",
            "--max-steps",
            "100000",
            "--eval-interval",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((run / "classifier.json").read_text(encoding="utf-8"))["step"] >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()}"
    proc.kill()
    proc.wait()
    assert json.loads((run / "classifier.json").read_text(encoding="utf-8"))["step"] >= 3
    assert load_classifier(run).labels == ["neg", "pos"]


# -- the model fields, declared once -------------------------------------------------------------
def test_train_config_takes_every_model_field_by_keyword_and_old_flat_configs():
    assert set(MODEL_FIELDS) == {f.name for f in dataclasses.fields(ModelConfig)} - {"vocab_size"}
    config = TrainConfig("corpus.txt", d_model=64, n_layers=2, n_heads=2, bias=False, n_kv_heads=1, norm="rmsnorm")
    assert config.corpus == "corpus.txt" and config.preset == "tiny"  # positional use unchanged
    model = config.model_config(vocab_size=65)
    assert (model.d_model, model.n_layers, model.kv_heads, model.bias, model.norm, model.context_length) == (
        64,
        2,
        1,
        False,
        "rmsnorm",
        64,
    )  # context_length from the preset
    # the older spelling still wins over both
    assert TrainConfig(d_model=64, model_options={"d_model": 32}).model_config(65).d_model == 32
    # a config.json "train" dict as tokvec wrote it before (9 model fields + model_options, flat)
    old = {
        "corpus": None,
        "tokenizer": "char",
        "preset": "tiny",
        "positional": "rope",
        "d_model": 32,
        "n_layers": 1,
        "n_heads": 2,
        "context_length": 16,
        "d_ff": None,
        "dropout": None,
        "norm": None,
        "activation": None,
        "model_options": {"bias": False},
        "max_steps": 5,
        "lr": 1e-3,
    }
    restored = TrainConfig.from_dict(old).model_config(40)
    assert (restored.positional, restored.d_model, restored.bias, restored.context_length) == ("rope", 32, False, 16)
    with pytest.raises(TokvecValueError, match="init_from .* bias=False"):
        TrainConfig(init_from="some/run", bias=False).validate()


@pytest.mark.slow
def test_a_run_saved_with_the_old_flat_train_dict_resumes(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    config = TrainConfig(
        corpus=str(corpus),
        d_model=16,
        n_layers=1,
        n_heads=2,
        context_length=16,
        batch_size=4,
        max_steps=4,
        eval_interval=2,
        eval_batches=1,
        threads=1,
        out=str(tmp_path / "run"),
    )
    full = train(dataclasses.replace(config, out=str(tmp_path / "full")))

    def stop_at_2(step, total, info):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, progress=stop_at_2)
    path = tmp_path / "run" / "config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    new_fields = {"positional_options", "bias", "tie_embeddings", "n_kv_heads", "qkv_bias", "norm_eps"}
    saved["train"] = {k: v for k, v in saved["train"].items() if k not in new_fields}  # the old flat dict
    path.write_text(json.dumps(ckpt.seal_config(saved)), encoding="utf-8")
    resumed = train(TrainConfig.for_resume(str(tmp_path / "run")))
    assert resumed.start_step == 2 and resumed.losses == full.losses[2:]


# -- CLI flags -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_flags_reach_the_saved_config(tmp_path, cli):
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")
    r = cli(
        "train",
        "--corpus",
        tmp_path / "c.txt",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--batch-size",
        "2",
        "--max-steps",
        "2",
        "--eval-interval",
        "2",
        "--threads",
        "1",
        "--dropout",
        "0.25",
        "--warmup",
        "1",
        "--min-lr",
        "2e-4",
        "--weight-decay",
        "0.05",
        "--eval-batches",
        "3",
        "--val-fraction",
        "0.3",
        "--out",
        tmp_path / "run",
    )
    assert r.code == 0, r.err
    saved = ckpt.read_run_config(tmp_path / "run")
    train_cfg = saved["train"]
    assert (
        train_cfg["dropout"],
        train_cfg["warmup_steps"],
        train_cfg["min_lr"],
        train_cfg["weight_decay"],
        train_cfg["eval_batches"],
        train_cfg["val_fraction"],
    ) == (0.25, 1, 2e-4, 0.05, 3, 0.3)
    assert saved["model"]["dropout"] == 0.25
    tokens = saved["data"]["tokens"]
    assert saved["data"]["val_tokens"] == pytest.approx(0.3 * tokens, abs=2)  # the split honours it


@pytest.mark.parametrize(
    "flag,value,facts",
    [
        ("--dropout", "1.5", ["--dropout must", "1.5", "[0.0, 1.0)", "--dropout 0.1"]),
        ("--warmup", "-1", ["--warmup must", "-1", "[0,", "--warmup 0"]),
        ("--min-lr", "0.5", ["--min-lr must", "0.5", "0.001]", "at most --lr"]),
        ("--weight-decay", "-0.1", ["--weight-decay must", "-0.1", "[0.0, 1000.0]", "--weight-decay 0.1"]),
        ("--eval-batches", "0", ["--eval-batches must", "0", "[1,", "--eval-batches 20"]),
        ("--val-fraction", "1", ["--val-fraction must", "1.0", "(0.0, 1.0)", "--val-fraction 0.1"]),
    ],
)
def test_bad_train_flags_give_one_line_with_value_limit_and_fix(tmp_path, cli, flag, value, facts):
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")
    r = cli("train", "--corpus", tmp_path / "c.txt", "--out", tmp_path / "run", flag, value)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and r.err.startswith("tokvec: error: "), r.err
    for fact in facts:
        assert fact in r.err, (fact, r.err)
    assert not (tmp_path / "run").exists()


def test_classify_flags_reach_the_saved_run(tmp_path, cli):
    csv = labelled_csv(tmp_path / "labels.csv")
    r = cli(
        "classify",
        "train",
        "--csv",
        csv,
        "--out",
        tmp_path / "clf",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--context",
        "16",
        "--max-steps",
        "3",
        "--dropout",
        "0.2",
        "--warmup",
        "1",
        "--min-lr",
        "1e-4",
        "--weight-decay",
        "0.2",
        "--val-fraction",
        "0.25",
        "--eval-interval",
        "2",
    )
    assert r.code == 0, r.err
    meta = json.loads((tmp_path / "clf" / "classifier.json").read_text(encoding="utf-8"))
    t = meta["train"]
    assert (t["dropout"], t["warmup_steps"], t["min_lr"], t["weight_decay"], t["val_fraction"], t["eval_interval"]) == (
        0.2,
        1,
        1e-4,
        0.2,
        0.25,
        2,
    )
    assert meta["model"]["dropout"] == 0.2 and meta["n_val"] == 15 and meta["n_train"] == 45  # 60 rows


@pytest.mark.parametrize(
    "flag,value,facts",
    [
        ("--dropout", "1", ["--dropout must", "1.0", "[0.0, 1.0)", "--dropout 0.1"]),
        ("--warmup", "-2", ["--warmup must", "-2", "[0,", "--warmup 0"]),
        ("--min-lr", "1", ["--min-lr must", "1.0", "0.003]", "at most --lr"]),
        ("--weight-decay", "nan", ["--weight-decay must", "nan", "[0.0, 1000.0]", "--weight-decay 0.01"]),
        ("--val-fraction", "1", ["--val-fraction must", "1.0", "[0.0, 1.0)", "--val-fraction 0.2"]),
        ("--eval-interval", "0", ["--eval-interval must", "0", "[1,", "--eval-interval 100"]),
    ],
)
def test_bad_classify_flags_give_one_line_with_value_limit_and_fix(tmp_path, cli, flag, value, facts):
    csv = labelled_csv(tmp_path / "labels.csv")
    r = cli("classify", "train", "--csv", csv, "--out", tmp_path / "clf", flag, value)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and r.err.startswith("tokvec: error: "), r.err
    for fact in facts:
        assert fact in r.err, (fact, r.err)
    assert not (tmp_path / "clf").exists()
