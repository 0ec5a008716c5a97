"""The streamed safetensors writer (runs/tensorfile.py) and the run saving built on it: the bytes are
safetensors' own, the recorded sha256 is the file's, a crash mid-write keeps the last good checkpoint,
and a save holds no second copy of the weights."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from tokvec.errors import TokvecTypeError, TokvecValueError
from tokvec.model import GPT, ModelConfig
from tokvec.runs import checkpoint as ckpt
from tokvec.runs import tensorfile
from tokvec.runs.tensorfile import TensorRow, rows_of, save_tensors, write_tensors
from tokvec.tokenizers import CharTokenizer

SRC = Path(__file__).resolve().parents[1] / "src"
TEXT = "to be or not to be, that is the question. "


def mixed_tensors() -> dict[str, torch.Tensor]:
    """Every dtype safetensors stores, and the awkward cases: 0-d, empty, non-contiguous, non-ASCII."""
    dtypes = [
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.uint16,
        torch.int32,
        torch.uint32,
        torch.int64,
        torch.uint64,
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.float8_e4m3fn,
        torch.float8_e5m2,
        torch.complex64,
    ]
    g = torch.Generator().manual_seed(0)
    out = {
        f"{chr(ord('z') - i)}.{str(dt).split('.')[-1]}": (torch.randn(2, 3, generator=g) * 9).to(dt)
        for i, dt in enumerate(dtypes)
    }
    out |= {
        "a.scalar": torch.tensor(3.5),
        "b.empty": torch.zeros(0, 5),
        "c.transposed": torch.randn(3, 4).t(),
        "词.嵌入": torch.randn(4, 2, generator=g),
    }
    return out


def test_bytes_are_safetensors_own(tmp_path):
    # pinned to the reference implementation: with one metadata key (safetensors orders several at random)
    # the file is byte for byte what safetensors.torch.save returns, dtype order and padding included
    tensors = mixed_tensors()
    reference = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={"format": "pt"})
    info = save_tensors(tmp_path / "x.safetensors", tensors, metadata={"format": "pt"})
    data = (tmp_path / "x.safetensors").read_bytes()
    assert data == reference
    assert info == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_safetensors_reads_it_back_with_every_tensor_and_the_metadata(tmp_path):
    tensors = mixed_tensors()
    meta = {"format": "tokvec.model", "step": "12", "aliases": json.dumps({"lm_head.weight": "词.嵌入"}), "ü": "ß"}
    save_tensors(tmp_path / "x.safetensors", tensors, metadata=meta)
    loaded = load_file(tmp_path / "x.safetensors")
    assert sorted(loaded) == sorted(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and loaded[name].shape == t.shape, name
        assert torch.equal(loaded[name].reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8)), name
    with safe_open(tmp_path / "x.safetensors", framework="pt") as f:
        assert f.metadata() == meta
    # metadata keys are sorted: the same tensors always give the same bytes (and the same sha256)
    again = io.BytesIO()
    assert (
        write_tensors(again, rows_of(tensors), metadata=dict(reversed(meta.items())))["sha256"]
        == hashlib.sha256((tmp_path / "x.safetensors").read_bytes()).hexdigest()
    )


def test_rows_are_built_only_when_written_and_checked_against_the_header(tmp_path):
    built = []

    def make(name, value):
        def f():
            built.append(name)
            return value

        return f

    rows = [
        TensorRow("b", (2, 2), torch.float32, make("b", torch.ones(2, 2))),
        TensorRow("a", (3,), torch.float32, make("a", torch.zeros(3))),
    ]
    out = io.BytesIO()
    write_tensors(out, rows)
    assert built == ["a", "b"]  # in file order, one at a time
    path = tmp_path / "bad.safetensors"
    with pytest.raises(RuntimeError, match=r"a: built \(4,\) torch.float32, the header says \(3,\)"):
        save_tensors(path, [TensorRow("a", (3,), torch.float32, lambda: torch.zeros(4))])
    assert list(tmp_path.iterdir()) == []  # atomic: no partial file, no temporary left


def test_bad_inputs_name_the_tensor_or_key(error_says):
    with error_says(TokvecTypeError, "'w'", "torch.complex128", "F32", "convert it"):
        write_tensors(io.BytesIO(), rows_of({"w": torch.zeros(2, dtype=torch.complex128)}))
    with pytest.raises(TokvecTypeError, match=r"'step' maps to int"):
        write_tensors(io.BytesIO(), rows_of({"w": torch.zeros(2)}), metadata={"format": "x", "step": 3})
    twice = [TensorRow("w", (1,), torch.float32, lambda: torch.zeros(1))] * 2
    with pytest.raises(TokvecValueError, match=r"tensor name 'w' appears twice"):
        write_tensors(io.BytesIO(), twice)


# -- save_run streams through it -------------------------------------------------------------------
def _model_and_optimizer(seed=0):
    tok = CharTokenizer.train([TEXT])
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=tok.vocab_size, context_length=16, d_model=32, n_layers=2, n_heads=2)
    model = GPT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.tensor([tok.encode(TEXT[:16])])
    opt.zero_grad()
    model(x, x)[1].backward()
    opt.step()
    return tok, cfg, model, opt


def _save(run, model, tok, cfg, opt, step):
    return ckpt.save_run(
        run, model=model, tokenizer=tok, model_config=cfg.to_dict(), train_config={}, step=step, optimizer=opt
    )


def test_save_run_records_the_sha256_of_the_file_bytes_and_safetensors_reads_the_files(tmp_path):
    tok, cfg, model, opt = _model_and_optimizer()
    _save(tmp_path, model, tok, cfg, opt, step=3)
    config = ckpt.read_run_config(tmp_path)
    for name in (ckpt.MODEL_FILE, ckpt.OPTIMIZER_FILE):
        data = (tmp_path / name).read_bytes()
        assert config["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    weights = load_file(tmp_path / ckpt.MODEL_FILE)
    state = model.state_dict()
    # the tied head is stored once, as an alias of the token table (the dedupe of before)
    with safe_open(tmp_path / ckpt.MODEL_FILE, framework="pt") as f:
        meta = f.metadata()
    aliases = json.loads(meta["aliases"])
    assert meta["format"] == "tokvec.model" and meta["step"] == "3"
    assert sorted(weights) == sorted(k for k in state if k not in aliases)
    assert all(torch.equal(weights[k], state[k]) for k in weights)
    assert all(torch.equal(state[alias], weights[name]) for alias, name in aliases.items())
    moments = load_file(tmp_path / ckpt.OPTIMIZER_FILE)
    assert torch.equal(moments["state/0/exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_a_crash_mid_write_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    tok, cfg, model, opt = _model_and_optimizer()
    _save(tmp_path, model, tok, cfg, opt, step=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    real = tensorfile.write_tensors

    def crash_after_one_tensor(f, rows, **kw):
        rows = list(rows)
        first = rows[0]

        def boom():
            raise OSError("disk full (simulated) after the first tensor")

        return real(f, [first, TensorRow("zzz", (1,), torch.float32, boom)], **kw)

    monkeypatch.setattr(tensorfile, "write_tensors", crash_after_one_tensor)
    with pytest.raises(OSError, match="simulated"):
        _save(tmp_path, model, tok, cfg, opt, step=2)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no pending, no temporary
    assert ckpt.load_run(tmp_path)[2]["step"] == 1


# a child that commits step 1, then writes step 2 slowly (one tensor every 50 ms) until it is killed
KILLED_MID_WRITE = textwrap.dedent("""
    import sys, time, torch
    from tokvec.model import GPT, ModelConfig
    from tokvec.runs import checkpoint as ckpt, tensorfile
    from tokvec.tokenizers import CharTokenizer
    run = sys.argv[1]
    tok = CharTokenizer.train(["to be or not to be"])
    cfg = ModelConfig(vocab_size=tok.vocab_size, context_length=16, d_model=32, n_layers=2, n_heads=2)
    torch.manual_seed(0)
    model = GPT(cfg)
    save = lambda step: ckpt.save_run(run, model=model, tokenizer=tok, model_config=cfg.to_dict(),
                                      train_config={}, step=step)
    save(1)
    real = tensorfile.write_tensors
    def slow(f, rows, **kw):
        def pace(row):
            def make():
                t = row.make()
                f.flush()
                print("writing", row.name, flush=True)
                time.sleep(0.05)
                return t
            return tensorfile.TensorRow(row.name, row.shape, row.dtype, make)
        return real(f, [pace(r) for r in rows], **kw)
    tensorfile.write_tensors = slow
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    save(2)
""")


@pytest.mark.slow
def test_kill_9_during_the_streamed_write_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_WRITE, str(run)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    deadline = time.monotonic() + 300  # a loaded machine can take a minute to import torch
    while time.monotonic() < deadline and len(seen) < 4:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
    assert len(seen) == 4, f"the child never got into the write: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)  # no handler runs: half a pending file stays behind
    proc.wait()
    temporaries = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert temporaries and ".model.safetensors.pending." in temporaries[0]
    model, _, config = ckpt.load_run(run)
    assert config["step"] == 1
    torch.manual_seed(0)
    fresh = GPT(ModelConfig.from_dict(config["model"]))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))


# the peak memory of saving one 256 MB tensor, above the RSS just before the save (Linux: VmHWM reset)
PEAK = textwrap.dedent("""
    import json, sys, torch
    from tokvec.runs import checkpoint as ckpt
    from tokvec.tokenizers import CharTokenizer
    tok = CharTokenizer.train(["abc"])
    weights = {"w": torch.randn(64 << 20 >> 2, 4)}  # 256 MB of float32, touched
    def rss(field):
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = rss("VmRSS")
    ckpt.save_run(sys.argv[1], model=weights, tokenizer=tok, model_config={}, train_config={}, step=0)
    print(json.dumps({"peak_above": rss("VmHWM") - before, "weights": weights["w"].numel() * 4}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc/self/clear_refs")
def test_saving_a_huge_tensor_holds_no_second_copy(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # before streaming: safetensors' buffer + the bytes copy = 2x the weights above the baseline
    assert result["peak_above"] < 0.1 * result["weights"], result
