"""Nothing lost (issue 11, items 1-3, 5, 6, 10, 11, 15): run directories keep their kind, are locked
while written, never commit garbage, clean up after a crash; outputs never overwrite inputs; a run
resumes from anywhere; the report reads only what training read.

Part of the fault-injection suite: the tables (CLAIMS, OUTPUT_IS_INPUT) take one row per case; the
CLI cases go through the real entry point (``tokvec.cli.main`` in-process, or the console script in
a subprocess where real processes matter: the lock, a kill -9, another working directory).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tokvec.errors import RunDirError, RunLockedError, TokvecValueError
from tokvec.runs import checkpoint as ckpt
from tokvec.runs.lock import LOCK_FILE, MARKER_FILE, RunClaim, RunLock, run_kind

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12
SMALL = [
    "--d-model",
    "16",
    "--layers",
    "1",
    "--heads",
    "2",
    "--context",
    "16",
    "--batch-size",
    "4",
    "--threads",
    "1",
    "--seed",
    "7",
]
SCRIPT = Path(sys.executable).with_name("tokvec")


def run_script(*args, cwd=None, timeout=240, **kwargs) -> subprocess.CompletedProcess:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tokvec"]
    env = {**os.environ, "COLUMNS": "250", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout, **kwargs
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A finished 4-step language-model run on a small file (module-wide; tests copy it to change it),
    trained in process (the subprocess tests below start their own)."""
    from tokvec import TrainConfig, train

    base = tmp_path_factory.mktemp("lm")
    (base / "corpus.txt").write_text(TEXT, encoding="utf-8")
    train(
        TrainConfig(
            corpus=str(base / "corpus.txt"),
            d_model=16,
            n_layers=1,
            n_heads=2,
            context_length=16,
            batch_size=4,
            threads=1,
            seed=7,
            max_steps=4,
            eval_interval=2,
            out=str(base / "run"),
        )
    )
    return base / "run"


def copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


# -- kinds and overwrites: one table, every writer ------------------------------------------------
def _lm(d: Path) -> None:
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"format": "tokvec.run", "version": 1}), encoding="utf-8")


def _classifier(d: Path) -> None:
    d.mkdir()
    (d / "classifier.json").write_text("{}", encoding="utf-8")


def _compare(d: Path) -> None:
    d.mkdir()
    (d / "compare.csv").write_text("scheme\n", encoding="utf-8")


def _marked_classifier(d: Path) -> None:  # a run that has not committed yet still has its kind
    d.mkdir()
    (d / MARKER_FILE).write_text(json.dumps({"format": "tokvec.rundir", "version": 1, "kind": "classifier"}))


def _foreign(d: Path) -> None:
    d.mkdir()
    (d / "tokenizer.json").write_text("my own file", encoding="utf-8")


def _file(d: Path) -> None:
    d.write_text("a file", encoding="utf-8")


def _empty(d: Path) -> None:
    d.mkdir()


def _missing(d: Path) -> None:
    pass


CLAIMS = [  # (what is there, kind to write, flags, expected error fragment or None)
    (_missing, "lm", {}, None),
    (_empty, "lm", {}, None),
    (_lm, "lm", {}, "already holds a lm run; continue it with --resume, replace it with --force"),
    (_lm, "lm", {"force": True}, None),
    (_lm, "lm", {"resume": True}, None),
    (_lm, "classifier", {}, "holds a lm run; writing a classifier run into it would break it"),
    (_lm, "classifier", {"force": True}, "holds a lm run; writing a classifier run"),
    (_lm, "positional-compare", {}, "holds a lm run"),
    (_classifier, "lm", {}, "holds a classifier run; writing a lm run"),
    (_classifier, "classifier", {}, "already holds a classifier run"),
    (_classifier, "classifier", {"force": True}, None),
    (_compare, "lm", {}, "holds a positional-compare run"),
    (_compare, "positional-compare", {}, "already holds a positional-compare run"),
    (_marked_classifier, "lm", {}, "holds a classifier run"),
    (_marked_classifier, "classifier", {}, None),
    (
        _foreign,
        "lm",
        {},
        "holds files tokvec did not write (tokenizer.json); pick a new or empty directory, or pass --force",
    ),
    (_foreign, "classifier", {}, "holds files tokvec did not write"),
    (_foreign, "lm", {"force": True}, None),
    (_file, "lm", {}, "is a file, not a directory"),
    (_empty, "lm", {"resume": True}, "holds no checkpoint to resume"),
    (_missing, "lm", {"resume": True}, "holds no checkpoint to resume"),
    (_classifier, "lm", {"resume": True}, "holds a classifier run"),
    (_lm, "lm", {"resume": True, "force": True}, "pass only one"),
]


@pytest.mark.parametrize(
    "make, kind, flags, fragment",
    CLAIMS,
    ids=[f"{m.__name__.strip('_')}->{k}{''.join('+' + f for f in fl)}" for m, k, fl, _ in CLAIMS],
)
def test_run_claims(tmp_path, make, kind, flags, fragment):
    d = tmp_path / "out"
    make(d)
    before = sorted(p.name for p in d.iterdir()) if d.is_dir() else None
    if fragment is not None:
        with pytest.raises(RunDirError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            with RunClaim(d, kind, **flags):
                pass
        after = sorted(p.name for p in d.iterdir()) if d.is_dir() else None
        assert after == before or (before is None and after is None)  # nothing touched, nothing created
        return
    with RunClaim(d, kind, **flags) as claim:
        assert run_kind(d) == kind
        assert (d / LOCK_FILE).read_text().strip() == str(os.getpid())
        if flags.get("force") and make is _lm:
            assert not claim.committed  # the old run is gone before the new one writes anything
    if make is _foreign:
        assert (d / "tokenizer.json").read_text(encoding="utf-8") == "my own file"  # --force never deletes theirs


def test_a_failed_run_leaves_no_directory_it_created(tmp_path):
    with pytest.raises(RuntimeError):
        with RunClaim(tmp_path / "new" / "run", "lm"):
            (tmp_path / "new" / "run" / "tokens.bin").write_bytes(b"\0" * 8)
            raise RuntimeError("training failed")
    assert not (tmp_path / "new" / "run").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError):
        with RunClaim(tmp_path / "kept", "lm"):
            raise RuntimeError("training failed")
    assert (tmp_path / "kept").is_dir()  # not ours to remove


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--corpus", "{missing}", "--out", "{out}"],
        ["train", "--corpus", "{short}", "--out", "{out}", "--max-steps", "2"],
        ["train", "--corpus", "{corpus}", "--out", "{out}", "--tokenizer", "bpe:99999", "--max-steps", "2"],
        ["classify", "train", "--csv", "{missing}", "--out", "{out}"],
        ["classify", "train", "--csv", "{short}", "--out", "{out}"],
    ],
    ids=["train-missing-corpus", "train-short-corpus", "train-bpe-too-big", "classify-missing-csv", "classify-bad-csv"],
)
def test_failed_commands_leave_no_empty_run_directory(tmp_path, cli, argv):
    (tmp_path / "short.txt").write_text("too short", encoding="utf-8")
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    names = dict(
        missing=tmp_path / "nope.txt",
        short=tmp_path / "short.txt",
        corpus=tmp_path / "corpus.txt",
        out=tmp_path / "runs" / "x",
    )
    code, _, err = cli(*[a.format(**names) for a in argv])
    assert code == 2 and err.strip().splitlines()[-1].startswith("tokvec: error: "), err
    assert not (tmp_path / "runs" / "x").exists()


@pytest.mark.slow
def test_cli_kind_and_overwrite_checks(lm_run, tmp_path, cli):
    run = copy_run(lm_run, tmp_path / "run")
    before = {p.name: digest(p) for p in run.iterdir() if p.is_file()}
    csv = tmp_path / "labels.csv"
    csv.write_text("text,label\ngood film,pos\nbad film,neg\n" * 4, encoding="utf-8")
    code, _, err = cli("classify", "train", "--csv", csv, "--out", run, "--max-steps", "2")
    assert code == 2 and "holds a lm run; writing a classifier run into it would break it" in err
    code, _, err = cli("train", "--corpus", lm_run.parent / "corpus.txt", "--out", run, "--max-steps", "2")
    assert code == 2 and "already holds a lm run; continue it with --resume, replace it with --force" in err
    assert {p.name: digest(p) for p in run.iterdir() if p.is_file() and p.name != LOCK_FILE} == {
        k: v for k, v in before.items() if k != LOCK_FILE
    }
    clf = tmp_path / "clf"
    code, _, err = cli(
        "classify",
        "train",
        "--csv",
        csv,
        "--out",
        clf,
        "--max-steps",
        "2",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
    )
    assert code == 0, err
    code, _, err = cli("classify", "train", "--csv", csv, "--out", clf, "--max-steps", "2")
    assert code == 2 and "already holds a classifier run" in err
    code, _, err = cli("train", "--corpus", lm_run.parent / "corpus.txt", "--out", clf, "--max-steps", "2")
    assert code == 2 and "holds a classifier run; writing a lm run" in err
    code, _, err = cli(
        "classify",
        "train",
        "--csv",
        csv,
        "--out",
        clf,
        "--max-steps",
        "3",
        "--force",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
    )
    assert code == 0, err
    code, out, err = cli("classify", "predict", "--run", clf, "good film")
    assert code == 0 and out.split()[0] in ("pos", "neg")


# -- the lock: two real processes ------------------------------------------------------------------
HOLDER = """
import sys, time
from tokvec.runs.lock import RunClaim
with RunClaim(sys.argv[1], "lm", resume=True):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_never_blocks(lm_run, tmp_path):
    run = copy_run(lm_run, tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for argv in (
            ["train", "--resume", run, "--max-steps", "6"],
            ["train", "--corpus", lm_run.parent / "corpus.txt", "--out", run, "--force", *SMALL],
        ):
            r = run_script(*argv)
            assert r.returncode == 2, r.stderr
            assert f"{run} is being written by process {holder.pid}" in r.stderr
        with pytest.raises(RunLockedError) as e:  # flock: a second open in one process conflicts too
            RunLock(run).acquire()
        assert e.value.pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    assert (run / LOCK_FILE).read_text().strip() == str(holder.pid)  # the stale file is still there...
    r = run_script("train", "--resume", run, "--max-steps", "6")
    assert r.returncode == 0, r.stderr  # ... and blocks nothing: the kernel dropped the lock with its owner
    assert ckpt.read_run_config(run)["step"] == 6


@pytest.mark.slow
def test_two_trainings_at_once_one_is_refused(tmp_path):
    (tmp_path / "corpus.txt").write_text(TEXT * 8, encoding="utf-8")
    argv = [
        "train",
        "--corpus",
        tmp_path / "corpus.txt",
        *SMALL,
        "--max-steps",
        "40",
        "--eval-interval",
        "5",
        "--out",
        tmp_path / "run",
    ]
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tokvec"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            cmd + [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    results = [(p.wait(240), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is being written by process" in refused or "already holds a lm run" in refused
    assert ckpt.read_run_config(tmp_path / "run")["step"] == 40
    model, _, _ = ckpt.load_run(tmp_path / "run")  # weights and config agree


# -- never a garbage checkpoint --------------------------------------------------------------------
@pytest.mark.slow
def test_a_diverging_run_commits_no_nan_checkpoint(tmp_path, cli):
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    # 1e12 itself is now refused up front (lr <= 1e3); the largest accepted lr still diverges
    code, _, err = cli(
        "train",
        "--corpus",
        tmp_path / "corpus.txt",
        *SMALL,
        "--lr",
        "1000",
        "--eval-interval",
        "1",
        "--max-steps",
        "6",
        "--out",
        tmp_path / "run",
    )
    assert code == 2, err
    assert "training stopped" in err and "Lower --lr (now 1000)" in err
    if ckpt.has_checkpoint(tmp_path / "run"):  # whatever was committed is finite and samples
        model, tok, _ = ckpt.load_run(tmp_path / "run")
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
        code, out, err = cli("generate", "--run", tmp_path / "run", "-n", "5", "--seed", "0")
        assert code == 0, err


def test_save_run_and_sampling_refuse_non_finite_values(lm_run, tmp_path, error_says):
    from tokvec.generate import generate

    model, tok, config = ckpt.load_run(lm_run)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with error_says(ckpt.CheckpointError, "NaN or infinite", "step 9", "lower the lr"):
        ckpt.save_run(
            tmp_path / "x",
            model=model,
            tokenizer=tok,
            model_config=config["model"],
            train_config=config["train"],
            step=9,
        )
    assert not (tmp_path / "x" / "config.json").exists()
    for temperature in (0.0, 0.8):
        with error_says(TokvecValueError, "NaN or infinite", "generating token 1"):
            generate(model, tok.encode("First"), 3, temperature=temperature, seed=0)


# -- a crash's leftovers -----------------------------------------------------------------------------
def test_resume_cleans_temporaries_and_rolls_a_committed_checkpoint_forward(lm_run, tmp_path):
    run = copy_run(lm_run, tmp_path / "run")
    (run / ".model.safetensors.pending.k9x2.tmp").write_bytes(b"\0" * 4096)  # killed mid-write
    (run / ".tokens.bin.a1b2.tmp").write_bytes(b"\0" * 4096)
    # killed after config.json (the commit) but before the pending weights were renamed into place
    os.replace(run / "model.safetensors", run / ".model.safetensors.pending")
    (run / "model.safetensors").write_bytes(b"older weights")
    with RunClaim(run, "lm", resume=True):
        pass
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == [LOCK_FILE]
    ckpt.load_run(run)  # the committed weights are in place


def test_an_uncommitted_pending_file_is_removed(lm_run, tmp_path):
    run = copy_run(lm_run, tmp_path / "run")
    (run / ".optimizer.safetensors.pending").write_bytes(b"a save that never committed")
    keep = digest(run / "optimizer.safetensors")
    with RunClaim(run, "lm", resume=True):
        pass
    assert not (run / ".optimizer.safetensors.pending").exists()
    assert digest(run / "optimizer.safetensors") == keep


def test_an_interrupt_reports_the_step_on_disk_not_a_guess(lm_run, tmp_path, cli, monkeypatch):
    from tokvec import TrainConfig

    train_module = sys.modules[TrainConfig.__module__]  # wherever the layout puts it

    def interrupted(config, progress=None):
        progress(5, 10, {"loss": 1.0, "lr": 1e-3, "tokens_per_s": 1.0})
        raise KeyboardInterrupt  # a second Ctrl-C: no checkpoint of step 5 was written

    monkeypatch.setattr(train_module, "train", interrupted)
    run = copy_run(lm_run, tmp_path / "run")
    code, _, err = cli("train", "--resume", run)
    assert code == 130
    assert "interrupted after step 5; the last checkpoint in" in err and "is step 4; continue with" in err
    code, _, err = cli("train", "--corpus", lm_run.parent / "corpus.txt", "--out", tmp_path / "new")
    assert code == 130 and "no checkpoint was saved in" in err and "checkpoint saved" not in err


# -- paths: absolute, resumable from anywhere, the run never reads itself ----------------------------
@pytest.mark.slow
def test_resume_from_another_directory_and_after_the_corpus_moved(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / "alice.txt").write_text(TEXT, encoding="utf-8")
    r = run_script(
        "train", "--corpus", "alice.txt", *SMALL, "--max-steps", "2", "--eval-interval", "2", "--out", "run", cwd=home
    )
    assert r.returncode == 0, r.stderr
    saved = ckpt.read_run_config(home / "run")["train"]
    assert saved["corpus"] == str(home / "alice.txt") and saved["out"] == str(home / "run")
    r = run_script("train", "--resume", home / "run", "--max-steps", "4", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr
    (home / "alice.txt").rename(home / "moved.txt")
    r = run_script("train", "--resume", "../home/run", "--max-steps", "6", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert f"tokvec: warning: the corpus {home / 'alice.txt'} is gone; resuming on the ids the run saved" in r.stderr
    assert ckpt.read_run_config(home / "run")["step"] == 6


@pytest.mark.slow
def test_a_run_inside_its_corpus_directory_never_reads_itself(tmp_path, cli):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text(TEXT, encoding="utf-8")
    (data / "b.txt").write_text(TEXT.upper(), encoding="utf-8")
    argv = ["train", "--corpus", data, *SMALL, "--max-steps", "2", "--eval-interval", "2", "--out", data / "run"]
    code, _, err = cli(*argv)
    assert code == 0, err
    tokens = ckpt.read_run_config(data / "run")["data"]["tokens"]
    assert tokens == 2 * len(TEXT)  # a char model: both files, nothing of the run directory
    code, _, err = cli("train", "--resume", data / "run", "--max-steps", "3")
    assert code == 0, err
    code, _, err = cli(*argv, "--force")  # a fresh start lists the corpus again: still not itself
    assert code == 0, err
    assert ckpt.read_run_config(data / "run")["data"]["tokens"] == tokens


# -- output == input, through every command that writes ---------------------------------------------
OUTPUT_IS_INPUT = [  # (argv with {placeholders}, the input that must survive, error fragment)
    (["encode", "--tokenizer", "{tok}", "--corpus", "{corpus}", "--out", "{corpus}"], "corpus", "is the input file"),
    (["encode", "--tokenizer", "{tok}", "--corpus", "{corpus}", "--out", "{link}"], "corpus", "is the input file"),
    (["encode", "--tokenizer", "{tok}", "--corpus", "{corpus}", "--out", "{tok}"], "tok", "is the input file"),
    (["encode", "--tokenizer", "{tok}", "--corpus", "{data}", "--out", "{data}/ids.bin"], "a", "inside the input"),
    (
        ["encode", "--tokenizer", "{tok}", "--corpus", "{data}", "--out", "{data}/../data/x/ids.bin"],
        "a",
        "inside the input",
    ),
    (
        ["encode", "--tokenizer", "{tok}", "--corpus", "{corpus}", "--out", "{corpus_stem}"],
        "corpus",
        "is the input file",
    ),  # the sidecar ids.bin.json would be the corpus
    (
        ["tokenizer", "train", "--corpus", "{corpus}", "--out", "{corpus}", "--vocab-size", "300"],
        "corpus",
        "is the input file",
    ),
    (
        ["tokenizer", "train", "--corpus", "{corpus}", "--out", "{hard}", "--vocab-size", "300"],
        "corpus",
        "is the input file",
    ),
    (
        ["tokenizer", "train", "{corpus}", "--out", "{data}/tok.json", "--corpus", "{data}", "--vocab-size", "300"],
        "a",
        "inside the input",
    ),
    (["train", "--corpus", "{corpus}", "--out", "{here}", "--max-steps", "2"], "corpus", "holds the input"),
    (
        ["train", "--corpus", "{data}", "--tokenizer", "{tok}", "--out", "{tokdir}", "--force", "--max-steps", "2"],
        "tok",
        "holds the input",
    ),
    (["classify", "train", "--csv", "{csv}", "--out", "{here}", "--max-steps", "2"], "csv", "holds the input"),
    (
        ["positional", "compare", "--corpus", "{corpus}", "--out", "{here}", "--max-steps", "2"],
        "corpus",
        "holds the input",
    ),
    (["plot", "loss", "--metrics", "{metrics}", "--out", "{metrics}"], "metrics", "is the input file"),
    (["plot", "loss", "--run", "{run}", "--out", "{run}/metrics.jsonl"], "metrics", "is the input file"),
    (["plot", "embeddings", "--run", "{run}", "--out", "{run}/tokenizer.json"], "runtok", "is the input file"),
    (["plot", "pe", "--run", "{run}", "--out", "{run}/model.safetensors"], "weights", "is the input file"),
    (
        ["plot", "attention", "--run", "{run}", "--text", "ab", "--out", "{run}/config.json"],
        "config",
        "is the input file",
    ),
    (["plot", "pe-similarity", "--run", "{run}", "--out", "{run}/tokens.bin"], "tokens", "is the input file"),
    (["report", "--run", "{run}", "--out", "{run}/model.safetensors"], "weights", "is the input file"),
    (["report", "--run", "{run}", "--val-text", "{corpus}", "--out", "{corpus}"], "corpus", "is the input file"),
]


@pytest.mark.parametrize(
    "argv, keep, fragment",
    OUTPUT_IS_INPUT,
    ids=[f"{i}-{' '.join(a[:2])}" for i, (a, _, _) in enumerate(OUTPUT_IS_INPUT)],
)
def test_no_command_overwrites_its_input(lm_run, tmp_path, cli, argv, keep, fragment):
    from tokvec.tokenizers import CharTokenizer

    here = tmp_path / "here"
    (here / "data").mkdir(parents=True)
    corpus = here / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    (tmp_path / "link.bin").symlink_to(corpus)
    os.link(corpus, tmp_path / "hard.json")
    (here / "data" / "a.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "tokdir").mkdir()
    tok = tmp_path / "tokdir" / "tok.json"
    CharTokenizer.train([TEXT]).save(tok)
    (here / "labels.csv").write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    run = copy_run(lm_run, tmp_path / "run")
    names = dict(
        tok=tok,
        corpus=corpus,
        link=tmp_path / "link.bin",
        hard=tmp_path / "hard.json",
        data=here / "data",
        corpus_stem=here / "corpus",
        here=here,
        csv=here / "labels.csv",
        tokdir=tmp_path / "tokdir",
        run=run,
        metrics=run / "metrics.jsonl",
    )
    if "{corpus_stem}" in argv:  # the corpus is named like the sidecar of --out (corpus -> corpus.json)
        os.replace(corpus, here / "corpus.json")
        names["corpus"] = here / "corpus.json"
    watched = dict(
        corpus=names["corpus"],
        tok=tok,
        a=here / "data" / "a.txt",
        csv=here / "labels.csv",
        metrics=run / "metrics.jsonl",
        runtok=run / "tokenizer.json",
        weights=run / "model.safetensors",
        config=run / "config.json",
        tokens=run / "tokens.bin",
    )[keep]
    before = digest(watched)
    code, out, err = cli(*[a.format(**names) for a in argv])
    assert code == 2, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tokvec: error: ") and fragment in last and "Traceback" not in err, err
    assert err.count("tokvec: error:") == 1
    assert digest(watched) == before


def test_encode_refuses_a_special_file_it_cannot_put_a_sidecar_beside(tmp_path, cli):
    from tokvec.tokenizers import CharTokenizer

    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    CharTokenizer.train([TEXT]).save(tmp_path / "tok.json")
    os.mkfifo(tmp_path / "fifo")
    code, _, err = cli(
        "encode", "--tokenizer", tmp_path / "tok.json", "--corpus", tmp_path / "corpus.txt", "--out", tmp_path / "fifo"
    )
    assert code == 2 and "is not a regular file" in err and "sidecar fifo.json" in err
    assert (tmp_path / "fifo").is_fifo()


def test_report_writes_through_a_fifo_and_keeps_a_symlink(lm_run, tmp_path, cli):
    import threading

    (tmp_path / "real.html").write_text("old", encoding="utf-8")
    (tmp_path / "link.html").symlink_to(tmp_path / "real.html")
    code, _, err = cli("report", "--run", lm_run, "--out", tmp_path / "link.html", "--max-new-tokens", "5")
    assert code == 0, err
    assert (tmp_path / "link.html").is_symlink() and "<!DOCTYPE html>" in (tmp_path / "real.html").read_text()
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, _, err = cli("plot", "loss", "--run", lm_run, "--out", fifo)
    reader.join(30)
    assert code == 0, err
    assert got and got[0].startswith(b"\x89PNG") and fifo.is_fifo()


# -- report: reads what training read, and only inside the run ----------------------------------------
@pytest.mark.slow
def test_report_on_a_multi_file_corpus_keeps_tokens_per_character_and_attention(tmp_path, cli):
    data = tmp_path / "corpus"
    data.mkdir()
    for i, name in enumerate(("a.py", "b.py", "c.py")):  # files that do not end in a newline
        (data / name).write_text(TEXT + f"def f{i}(x):\n    return x + {i}" * 30, encoding="utf-8")
    r = run_script(
        "train",
        "--corpus",
        data,
        "--tokenizer",
        "bpe:300",
        *SMALL,
        "--max-steps",
        "2",
        "--eval-interval",
        "2",
        "--out",
        tmp_path / "run",
    )
    assert r.returncode == 0, r.stderr
    # a prompt: a BPE tokenizer has no <bos> to start an empty one from (that section would say so)
    code, _, err = cli(
        "report", "--run", tmp_path / "run", "--out", tmp_path / "r.html", "--max-new-tokens", "5", "--prompt", "def "
    )
    assert code == 0, err
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "tokens per character" in page and "the run&#x27;s validation split" in page
    assert "layer 0 of 1" in page  # the attention section found text to read
    assert "not available" not in page


def test_a_crafted_config_cannot_make_the_report_embed_another_file(lm_run, tmp_path, cli):
    run = copy_run(lm_run, tmp_path / "run")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:TOP-SECRET\n" * 50, encoding="utf-8")
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    config["train"]["corpus"] = str(secret)
    (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (run / "tokens.bin").unlink()  # nothing to read inside the run: the report must not look elsewhere
    try:
        code, _, err = cli("report", "--run", run, "--out", tmp_path / "r.html", "--max-new-tokens", "5")
    except Exception:  # pragma: no cover
        raise
    if code == 2:  # a config with a checksum refuses the edit outright: also safe
        assert "config.json" in err
        return
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "TOP-SECRET" not in page
    assert "the run has no tokens.bin" in page


# -- small things a new user meets -------------------------------------------------------------------
def test_previews_mark_what_they_cut(cli):
    code, out, _ = cli("embed", "a longer text than four rows", "--d-model", "16")
    assert code == 0
    assert "… 10 more" in out  # columns d0..d5 of 16
    assert "… 24 more" in out  # rows 0..3 of 28 characters
    code, out, _ = cli("trace", "abcdefgh", "--d-model", "8")
    assert code == 0 and "… 4 more" in out


def test_one_default_temperature():
    import importlib
    import inspect

    from tokvec.cli.generate import generate_cmd
    from tokvec.model.gpt import GPT

    g = importlib.import_module("tokvec.generate")
    assert g.DEFAULT_TEMPERATURE == 0.8
    for fn in (g.generate, g.stream, GPT.generate):
        assert inspect.signature(fn).parameters["temperature"].default == g.DEFAULT_TEMPERATURE
    assert inspect.signature(generate_cmd).parameters["temperature"].default.default == g.DEFAULT_TEMPERATURE


def test_bpe_running_out_of_merges_names_a_flag_train_has(tmp_path, cli):
    (tmp_path / "c.txt").write_text("ab " * 50, encoding="utf-8")
    code, _, err = cli(
        "train",
        "--corpus",
        tmp_path / "c.txt",
        "--tokenizer",
        "bpe:5000",
        "--out",
        tmp_path / "run",
        "--max-steps",
        "1",
    )
    assert code == 2 and "--tokenizer bpe:" in err and "tokvec tokenizer train --allow-smaller" in err
    code, out, _ = cli("train", "--help")
    assert "--allow-smaller" not in out


def test_positional_compare_checks_its_output_before_training(tmp_path, cli):
    (tmp_path / "c.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "busy").write_text("a file where the directory should go", encoding="utf-8")
    start = time.perf_counter()
    code, _, err = cli(
        "positional",
        "compare",
        "--corpus",
        tmp_path / "c.txt",
        "--out",
        tmp_path / "busy",
        "--schemes",
        "rope",
        "--max-steps",
        "50",
    )
    assert code == 2 and "is a file, not a directory" in err
    assert time.perf_counter() - start < 20  # refused up front, no scheme trained
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "compare.csv").write_text("old", encoding="utf-8")
    code, _, err = cli(
        "positional", "compare", "--corpus", tmp_path / "c.txt", "--out", ro, "--schemes", "rope", "--max-steps", "50"
    )
    assert code == 2 and "already holds a positional-compare run" in err and "--force" in err
