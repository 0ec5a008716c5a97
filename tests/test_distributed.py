"""Distributed training with real processes: torchrun, gloo, 2 ranks on localhost, a tiny model."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tokvec.errors import DistributedError, TokvecValueError
from tokvec.runs import distributed as D
from tokvec.runs.checkpoint import load_run, read_metrics

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")

MODEL = ["--d-model", "32", "--layers", "2", "--heads", "2", "--context", "32", "--threads", "1", "--seed", "3"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import random

    rng = random.Random(0)
    words = "the quick brown fox jumps over lazy dog and cat sat on mat while bird sings".split()
    path = tmp_path_factory.mktemp("corpus") / "c.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(800)), encoding="utf-8")
    return path


def tokvec(*args, nproc=1, timeout=240, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "tokvec", *args]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "tokvec",
            *args,
        ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """One single-process run with batch 8, and the same on 2 DDP processes with batch 4 each."""
    base = tmp_path_factory.mktemp("runs")
    common = ["train", "--corpus", str(corpus), *MODEL, "--max-steps", "12", "--eval-interval", "6"]
    single = tokvec(*common, "--batch-size", "8", "--out", str(base / "single"))
    assert single.returncode == 0, single.stderr
    ddp = tokvec(*common, "--batch-size", "4", "--out", str(base / "ddp"), nproc=2)
    assert ddp.returncode == 0, ddp.stderr + ddp.stdout
    return base, ddp


@pytest.mark.slow
def test_ddp_follows_the_single_process_loss_curve(runs):
    base, ddp = runs
    assert "effective batch 8 windows per step = batch size 4 x 2 process(es) x 1 accumulation step(s)" in ddp.stderr
    single, multi = read_metrics(base / "single"), read_metrics(base / "ddp")
    assert [(r["step"], r["split"]) for r in multi] == [(r["step"], r["split"]) for r in single]
    for a, b in zip(single, multi):  # eval loss averaged over ranks = the single process's mean
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    wa, wb = load_file(base / "single" / "model.safetensors"), load_file(base / "ddp" / "model.safetensors")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-4
    assert ddp.stdout.count("done: step 12") == 1  # only rank 0 speaks


@pytest.mark.slow
def test_resume_a_ddp_checkpoint_in_one_process(runs, tmp_path):
    base, _ = runs
    r = tokvec("train", "--resume", str(base / "ddp"), "--max-steps", "15", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "done: step 15" in r.stdout
    model, tok, config = load_run(base / "ddp")
    assert config["step"] == 15 and config["world_size"] == 1
    steps = [m["step"] for m in read_metrics(base / "ddp") if m["split"] == "val"]
    assert steps == [6, 12, 15]


@pytest.mark.slow
def test_fsdp_trains_like_ddp_and_saves_whole_weights(corpus, runs, tmp_path):
    base, _ = runs
    r = tokvec(
        "train",
        "--corpus",
        str(corpus),
        *MODEL,
        "--max-steps",
        "12",
        "--eval-interval",
        "6",
        "--batch-size",
        "4",
        "--strategy",
        "fsdp",
        "--out",
        str(tmp_path / "fsdp"),
        nproc=2,
    )
    assert r.returncode == 0, r.stderr
    single, fsdp = load_file(base / "single" / "model.safetensors"), load_file(tmp_path / "fsdp" / "model.safetensors")
    assert sorted(fsdp) == sorted(single)  # whole tensors, loadable by one process
    assert max((single[k] - fsdp[k]).abs().max().item() for k in single) < 1e-4
    model, tok, _ = load_run(tmp_path / "fsdp")
    assert model.generate(torch.tensor(tok.encode("the ")), max_new_tokens=5, seed=0).shape == (9,)
    # resume the FSDP checkpoint under FSDP and, from a copy, under DDP: the same continuation
    import shutil

    shutil.copytree(tmp_path / "fsdp", tmp_path / "as-ddp")
    for run, strategy in (("fsdp", "fsdp"), ("as-ddp", "ddp")):
        again = tokvec(
            "train",
            "--resume",
            str(tmp_path / run),
            "--max-steps",
            "15",
            "--eval-interval",
            "3",
            "--strategy",
            strategy,
            nproc=2,
        )
        assert again.returncode == 0, again.stderr
    a, b = read_metrics(tmp_path / "fsdp"), read_metrics(tmp_path / "as-ddp")
    assert a[-1]["step"] == b[-1]["step"] == 15
    assert a[-1]["loss"] == pytest.approx(b[-1]["loss"], rel=1e-5)


@pytest.mark.slow
def test_killing_one_rank_fails_the_job_instead_of_hanging(corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tokvec",
        "train",
        "--corpus",
        str(corpus),
        *MODEL,
        "--max-steps",
        "100000",
        "--eval-interval",
        "5",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "run"),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "config.json").exists():  # training has begun and checkpointed
            assert time.time() < deadline and proc.poll() is None, "training never started"
            time.sleep(0.5)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
        os.kill(int(children[1]), signal.SIGKILL)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "SIGKILL" in output  # torchrun names the rank that died and how
    model, _, config = load_run(tmp_path / "run")  # the last checkpoint is intact
    assert config["step"] % 5 == 0


def _lonely_rank(rank, port, q):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    ctx = D.init_distributed("ddp", "gloo", timeout_s=3)
    if rank == 1:
        D.barrier(ctx)
        return  # leaves without taking part in the next collective
    D.barrier(ctx)
    try:
        with D.collective_errors(ctx, 3):
            D.all_reduce_sum([1.0], ctx)
        q.put("no error")
    except DistributedError as e:
        q.put(str(e))


@pytest.mark.slow
def test_a_peer_that_stops_answering_becomes_a_clear_error():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_lonely_rank, args=(r, port, q)) for r in (0, 1)]
    for p in procs:
        p.start()
    message = q.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
    assert message.startswith("rank 0 of 2 lost contact with the other processes")
    assert "did not answer within 3 s" in message


def test_bad_settings(monkeypatch, error_says):
    with error_says(TokvecValueError, "'zero3'", "auto, none, ddp, fsdp"):
        D.init_distributed("zero3")
    with error_says(TokvecValueError, "--strategy ddp", "WORLD_SIZE is 1"):
        D.init_distributed("ddp")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with error_says(TokvecValueError, "WORLD_SIZE='two'", "torchrun"):
        D.init_distributed()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with error_says(TokvecValueError, "RANK 5", "WORLD_SIZE 2"):
        D.init_distributed()


def test_cli_reads_the_launch_environment_once_and_reports_it_in_one_line(tmp_path, monkeypatch, cli):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world\n" * 200, encoding="utf-8")
    args = (
        "train",
        "--corpus",
        corpus,
        "--tokenizer",
        "char",
        "--preset",
        "tiny",
        "--max-steps",
        "1",
        "--out",
        tmp_path / "run",
    )
    monkeypatch.setenv("WORLD_SIZE", "two")
    code, _, err = cli(*args)
    assert code == 2 and "WORLD_SIZE='two' is not an integer" in err and "Traceback" not in err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, _, err = cli("train", "--resume", tmp_path / "nowhere")
    assert code == 2 and err.startswith("tokvec: error: [rank 1] ")


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_fsdp_shuts_down_cleanly_every_time(corpus, tmp_path, attempt):
    """Issue 11 item 17: one of nine 2-rank FSDP runs aborted (SIGABRT) at exit after writing its
    checkpoint. A teardown race shows up only now and then, so the run is repeated."""
    r = tokvec(
        "train",
        "--corpus",
        str(corpus),
        *MODEL,
        "--max-steps",
        "2",
        "--eval-interval",
        "2",
        "--batch-size",
        "4",
        "--strategy",
        "fsdp",
        "--out",
        str(tmp_path / "run"),
        nproc=2,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for sign in ("SIGABRT", "terminate called", "Signal 6", "exitcode  : -6"):
        assert sign not in r.stderr
    assert load_run(tmp_path / "run")[2]["step"] == 2
