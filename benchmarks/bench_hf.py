"""Import and export of a GPT-2 small checkpoint: tokvec against transformers, same directory, same run.

A randomly initialised ``GPT2Config()`` (124 M parameters, 498 MB of float32) is saved once with
``save_pretrained`` (one model.safetensors). Then, each side in its own fresh subprocess (1 torch
thread), sides alternating:

- import: tokvec ``GPT.from_pretrained(dir)`` vs transformers ``AutoModelForCausalLM.from_pretrained(dir)``
- export: the loaded model written as a HF directory's weights: tokvec's streamed writer
  (``tokvec.runs.hf.write_safetensors(hf_tensors(model))``) vs ``model.save_pretrained(out)``
- export-durable: the same, with transformers' files made as durable as tokvec's (each file it wrote
  fsynced, then the directory, after ``save_pretrained``): the same work on both sides
- convert: the whole ``tokvec import DIR --out RUN`` (read, write the run directory with its
  checkpoint code) vs ``from_pretrained`` + ``save_pretrained``
- checkpoint: the weights file of a run and its sha256 (what ``save_run`` records): tokvec's streamed
  writer (``tokvec.runs.tensorfile.save_tensors``, hashing while writing) vs the library:
  ``safetensors.torch.save_file``, fsync, rename, then the file read back to hash it
- load-run: the model of the run ``tokvec import`` wrote, sha-checked (``checkpoint.load_run``:
  positioned reads into ``GPT.empty``'s parameters, hashed in the same pass) vs the library way:
  ``safetensors.torch.load_file`` + ``load_state_dict`` into ``GPT.empty`` + the file's sha256
- export-run: the whole ``tokvec export --run RUN --format hf`` (``runs.hf.export_hf``: load_run,
  then the streamed writer, fsynced) vs transformers' ``from_pretrained`` + ``save_pretrained`` (the issue's peer,
  which leaves the flush to the kernel)

Time is the operation's wall time (and its process CPU time: on a loaded machine the wall time
mostly measures the scheduler); ``os.sync()`` runs before each, so no side pays for the dirty pages
the other side left (tokvec fsyncs what it writes, transformers leaves the flush to the kernel).
Memory is the process's peak RSS (VmHWM, reset just before) above its RSS just before the operation
(after imports; for export and checkpoint, with the model already loaded), as a multiple of the
weights. transformers memory-maps the checkpoint, so its imported weights are file pages that RSS
counts only once touched (by the first forward, or by save_pretrained).
Targets (issue 14): time <= 1.5x transformers', peak <= 1.3x the weights.

    python benchmarks/bench_hf.py [--rounds 2] [--ops import export export-durable convert checkpoint load-run export-run]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"  # any text; a built-in sentence when absent

CHILD = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
side, op, src, out, run = sys.argv[1:6]

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

if side == "tokvec":
    from tokvec.model.gpt import GPT
    from tokvec.runs.hf import import_hf, write_safetensors
    from tokvec.model.hf import hf_tensors
    load = lambda: GPT.from_pretrained(src)
    save = lambda m: write_safetensors(os.path.join(out, "model.safetensors"), hf_tensors(m, "gpt2"), metadata={"format": "pt"})
else:
    from transformers import AutoModelForCausalLM
    load = lambda: AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    save = lambda m: m.save_pretrained(out)
    if op == "export-durable":  # the same durability as tokvec's atomic writes: every file, then the directory
        def save(m):
            m.save_pretrained(out)
            for name in [*os.listdir(out), "."]:
                fd = os.open(os.path.join(out, name), os.O_RDONLY); os.fsync(fd); os.close(fd)
def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets VmHWM to the current RSS
        f.write("5")

def start():
    os.sync()  # neither side pays for the dirty pages the other side left behind
    reset_peak()
    return rss("VmRSS"), time.perf_counter(), time.process_time()

if op == "checkpoint":  # what save_run needs (the file and its sha256): the streamed writer vs the library
    from tokvec.model.gpt import GPT
    model = GPT.from_pretrained(src)
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # the tied head: stored once
    path = os.path.join(out, "model.safetensors")
    before, t0, c0 = start()
    if side == "tokvec":
        from tokvec.runs.tensorfile import save_tensors
        save_tensors(path, sd, metadata={"format": "tokvec.model"})
    else:  # safetensors' save_file (from the tensors' memory, no copy), fsync, rename, then hash the file
        import hashlib
        from safetensors.torch import save_file
        save_file(sd, path + ".tmp", metadata={"format": "tokvec.model"})
        fd = os.open(path + ".tmp", os.O_RDONLY); os.fsync(fd); os.close(fd); os.replace(path + ".tmp", path)
        sha, buf = hashlib.sha256(), bytearray(1 << 20)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                sha.update(memoryview(buf)[:n])
elif op == "load-run":  # a run's model, sha-checked: tokvec's reader vs safetensors' load_file + load_state_dict
    import hashlib
    from safetensors.torch import load_file
    from tokvec.model import GPT, ModelConfig
    from tokvec.runs import checkpoint as ckpt
    from tokvec.tokenizers import load_tokenizer  # noqa: F401 (imported before the clock, as load_run needs it)
    before, t0, c0 = start()
    if side == "tokvec":
        model = ckpt.load_run(run)[0]
    else:
        config = ckpt.read_run_config(run)
        path = os.path.join(run, "model.safetensors")
        sha, buf = hashlib.sha256(), bytearray(1 << 20)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                sha.update(memoryview(buf)[:n])
        if sha.hexdigest() != config["files"]["model.safetensors"]["sha256"]:
            raise SystemExit("sha256 mismatch")
        model = GPT.empty(ModelConfig.from_dict(config["model"]))
        sd = load_file(path)
        model.load_state_dict(sd)
        del sd
elif op == "export-run":  # the whole `tokvec export --run RUN --format hf` vs from_pretrained + save_pretrained
    from tokvec.runs.hf import export_hf
    from tokvec.tokenizers import load_tokenizer  # noqa: F401 (imported before the clock, as load_run needs it)
    before, t0, c0 = start()
    if side == "tokvec":
        export_hf(run, os.path.join(out, "hf")); model = None
    else:
        model = load(); save(model)
elif op == "convert":  # the whole `tokvec import DIR --out RUN` vs from_pretrained + save_pretrained
    before, t0, c0 = start()
    if side == "tokvec":
        import_hf(src, os.path.join(out, "run")); model = None
    else:
        model = load(); save(model)
elif op == "import":
    before, t0, c0 = start(); model = load()
else:
    model = load()
    before, t0, c0 = start(); save(model)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
weights = (os.path.getsize(os.path.join(src, "model.safetensors")) if model is None else
           sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values()))
print(json.dumps({"seconds": dt, "cpu": cpu, "peak_above": rss("VmHWM") - before, "weights": weights}))
"""


OPS = ("import", "export", "export-durable", "convert", "checkpoint", "load-run", "export-run")


def make_checkpoint(directory: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tokvec.tokenizers import BPETokenizer

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(directory)
    # `tokvec import` needs a tokenizer whose ids fit the model: a small BPE (fewer ids than 50257 is allowed)
    text = DATA.read_text(encoding="utf-8") if DATA.is_file() else "the quick brown fox jumps over the lazy dog\n" * 500
    BPETokenizer.train_from_texts(
        [text], vocab_size=1000, special_tokens=["<|endoftext|>"], allow_smaller=True
    ).save_hf(directory)


def run_side(side: str, op: str, src: Path, out: Path, run: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, side, op, str(src), str(out), str(run)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode:
        raise SystemExit(f"{side} {op} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (1: the issue's one run)")
    parser.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS), help="operations to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_hf_") as tmp:
        src = Path(tmp) / "gpt2"
        make_checkpoint(src)
        run = Path(tmp) / "run"
        if {"load-run", "export-run"} & set(args.ops):  # the run `tokvec import` writes (its own process)
            subprocess.run(
                [sys.executable, "-c", "import sys; from tokvec.runs.hf import import_hf; import_hf(*sys.argv[1:])"]
                + [str(src), str(run)],
                check=True,
            )
        size = (src / "model.safetensors").stat().st_size
        rows = {}
        for r in range(args.rounds):
            for op in args.ops:
                sides = ("tokvec", "transformers") if r % 2 == 0 else ("transformers", "tokvec")
                for side in sides:
                    res = run_side(side, op, src, Path(tmp) / f"out-{side}-{op}-{r}", run)
                    rows.setdefault((op, side), []).append(res)
        load = os.getloadavg()
        print(
            f"GPT2Config() checkpoint: {size / 1e6:.0f} MB; load average {load[0]:.1f} {load[1]:.1f}; "
            f"{args.rounds} round(s), best of rounds"
        )
        print(
            "| operation | tokvec s | peer s | time ratio | tokvec CPU s | peer CPU s | CPU ratio | "
            "tokvec peak / weights | peer peak / weights |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for op in args.ops:
            t = min(rows[(op, "tokvec")], key=lambda x: x["seconds"])
            h = min(rows[(op, "transformers")], key=lambda x: x["seconds"])
            tc = min(x["cpu"] for x in rows[(op, "tokvec")])
            hc = min(x["cpu"] for x in rows[(op, "transformers")])
            tp = min(x["peak_above"] for x in rows[(op, "tokvec")]) / t["weights"]
            hp = min(x["peak_above"] for x in rows[(op, "transformers")]) / h["weights"]
            print(
                f"| {op} | {t['seconds']:.2f} | {h['seconds']:.2f} | {t['seconds'] / h['seconds']:.2f}x | "
                f"{tc:.2f} | {hc:.2f} | {tc / hc:.2f}x | {tp:.2f}x | {hp:.2f}x |"
            )
        print(
            "all rounds (s):", {f"{op} {side}": [round(x["seconds"], 2) for x in v] for (op, side), v in rows.items()}
        )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark wall time {time.perf_counter() - start:.0f} s)")
