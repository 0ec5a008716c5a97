"""Byte-level BPE against its peers, side by side in one run (ratios, not absolute timings).

    python benchmarks/bench_bpe.py [--quick] [--big-mb 200]
    python benchmarks/bench_bpe.py --engines-only [--repeat 2]
    python benchmarks/bench_bpe.py --memory-mb 50 [--before-src ../main/src]
    python benchmarks/bench_bpe.py --encode-memory-mb 50 [--before-src ../main/src]

0. training engines: tokvec's default engine ("auto" = native, tokvec's C trainer) against its HF
   engine (HF BpeTrainer), with the rustbpe engine for context; same files, pattern, vocabulary and
   min_frequency, runs interleaved, best of --repeat; vocab 4096 and 32768, min_frequency 2 (the
   default) and 1; compression = tokens per byte of the training corpus (target: within 1%);
1. train time: tokvec (HF BpeTrainer fed by tokvec's streaming reader, cl100k pattern) vs HF
   tokenizers' BpeTrainer used directly (ByteLevel pre-tokenizer, its own file reader) vs
   sentencepiece BPE, at vocab 4096 and 32000;
2. encode MB/s on one long string: tokvec vs tiktoken built from the same ranks (target >= 0.95x)
   vs HF tokenizers (its own model trained at the same vocab size; target >= 5x);
3. encode_batch on one-line items: tokvec vs HF encode_batch (target >= 3x), with tiktoken's own
   encode_batch shown for context;
(--memory-mb) training peak RSS on text without whitespace, in child processes (issue 11);
(--encode-memory-mb) token file peak RSS and MB/s on text with no whitespace cut, in child
   processes, this checkout against --before-src (issue 11 item 16);
4. corpus -> token file: MB/s and peak RSS (child process) on a ~200 MB file made by repeating a
   corpus in a temp dir (deleted afterwards); target peak RSS < 300 MB.
Corpora: ../shared/data/tinyshakespeare.txt (English) and tang-poems.txt (classical Chinese).
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
DATA = ROOT / ".." / "shared" / "data"
CORPORA = {"english": DATA / "tinyshakespeare.txt", "chinese": DATA / "tang-poems.txt"}
sys.path.insert(0, str(ROOT / "src"))


def best_of(*fns, repeat: int = 7, min_seconds: float = 0.0, max_repeat: int = 15) -> list[float]:
    """Best time of each function, runs interleaved (a shared machine's load hits all of them alike):
    ``repeat`` rounds, more (up to ``max_repeat``) until ``min_seconds`` were spent in all."""
    best = [float("inf")] * len(fns)
    spent, rounds = 0.0, 0
    while rounds < repeat or (spent < min_seconds and rounds < max_repeat):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            best[k] = min(best[k], took)
            spent += took
        rounds += 1
    return best


def bench_engines(name: str, path: Path, repeat: int, results: list) -> None:
    from tokvec import BPETokenizer

    size = path.stat().st_size
    text = path.read_text(encoding="utf-8")
    for vocab in (4096, 32768):
        for min_frequency in (2, 1):
            toks: dict[str, BPETokenizer] = {}

            def run(engine: str):
                return lambda: toks.__setitem__(
                    engine,
                    BPETokenizer.train(
                        path, vocab_size=vocab, min_frequency=min_frequency, allow_smaller=True, engine=engine
                    ),
                )

            # short runs: more rounds
            t_auto, t_rust, t_hf = best_of(run("auto"), run("rustbpe"), run("hf"), repeat=repeat, min_seconds=20)
            fast, rust, hf = toks["auto"], toks["rustbpe"], toks["hf"]
            tpb_fast, tpb_hf = len(fast.encode(text)) / size, len(hf.encode(text)) / size
            results.append(
                (
                    f"train {name} vocab {vocab} min_frequency {min_frequency}",
                    f"tokvec auto ({fast.trained_by}) {t_auto:.2f} s, {fast.vocab_size} tokens, "
                    f"{tpb_fast:.4f} tokens/byte",
                    f"tokvec rustbpe {t_rust:.2f} s ({t_rust / t_auto:.1f}x auto's time), same ranks: {rust.ranks == fast.ranks}",
                    f"tokvec hf {t_hf:.2f} s, {hf.vocab_size} tokens, {tpb_hf:.4f} tokens/byte",
                    f"{t_hf / t_auto:.2f}x faster, compression {tpb_fast / tpb_hf - 1:+.2%}",
                )
            )
            print(" | ".join(results[-1]), flush=True)


def hf_bytelevel_trainer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    return hf, trainer


def train_sentencepiece(path: Path, vocab_size: int, tmp: Path) -> float | str:
    try:
        import sentencepiece as spm
    except ImportError:
        return "not installed (pip install .[bench])"
    start = time.perf_counter()
    try:
        spm.SentencePieceTrainer.train(
            input=str(path),
            model_prefix=str(tmp / f"sp{vocab_size}"),
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=0.9995,
            byte_fallback=True,
            num_threads=os.cpu_count(),
            minloglevel=2,
            max_sentence_length=1 << 16,
        )
    except RuntimeError as e:
        return f"failed: ...{' '.join(str(e).split())[-70:]}"
    return time.perf_counter() - start


def bench_train(name: str, path: Path, vocabs: list[int], tmp: Path, results: list) -> dict:
    from tokvec import BPETokenizer

    toks = {}
    for vocab in vocabs:
        start = time.perf_counter()
        tok = BPETokenizer.train(path, vocab_size=vocab, allow_smaller=True)
        t_tokvec = time.perf_counter() - start
        hf, trainer = hf_bytelevel_trainer(vocab)
        start = time.perf_counter()
        hf.train([str(path)], trainer=trainer)
        t_hf = time.perf_counter() - start
        t_sp = train_sentencepiece(path, vocab, tmp)
        sp = f"{t_sp:.2f} s ({t_tokvec / t_sp:.2f}x)" if isinstance(t_sp, float) else t_sp
        results.append(
            (
                f"train {name} vocab {vocab}",
                f"tokvec {t_tokvec:.2f} s (got {tok.vocab_size})",
                f"HF BpeTrainer {t_hf:.2f} s ({t_tokvec / t_hf:.2f}x)",
                f"sentencepiece BPE {sp}",
            )
        )
        toks[vocab] = (tok, hf)
    return toks


def bench_encode(name: str, text: str, tok, hf, results: list) -> None:
    import tiktoken

    mb = len(text.encode("utf-8")) / 1e6
    tt = tiktoken.Encoding(name="same-ranks", pat_str=tok.pat_str, mergeable_ranks=tok.ranks, special_tokens={})
    assert tok.encode(text) == tt.encode(text)
    t_tokvec, t_tt, t_tto, t_hf = best_of(
        lambda: tok.encode(text), lambda: tt.encode(text), lambda: tt.encode_ordinary(text), lambda: hf.encode(text)
    )
    results.append(
        (
            f"encode {name} ({mb:.1f} MB, one string, vocab {tok.vocab_size})",
            f"tokvec {mb / t_tokvec:.1f} MB/s",
            f"tiktoken encode {mb / t_tt:.1f} MB/s ({t_tt / t_tokvec:.2f}x), encode_ordinary "
            f"{mb / t_tto:.1f} MB/s ({t_tto / t_tokvec:.2f}x)",
            f"HF {mb / t_hf:.1f} MB/s ({t_hf / t_tokvec:.2f}x)",
        )
    )
    lines = [line for line in text.splitlines() if line.strip()]
    mb_lines = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    assert tok.encode_batch(lines[:5000]) == [tok.encode(line) for line in lines[:5000]]
    t_batch, t_hf_batch = best_of(lambda: tok.encode_batch(lines), lambda: hf.encode_batch(lines))
    (t_tt_batch,) = best_of(lambda: tt.encode_batch(lines), repeat=1)
    results.append(
        (
            f"encode_batch {name} ({len(lines)} one-line items, {mb_lines:.1f} MB)",
            f"tokvec {mb_lines / t_batch:.1f} MB/s",
            f"HF encode_batch {mb_lines / t_hf_batch:.1f} MB/s ({t_hf_batch / t_batch:.2f}x)",
            f"tiktoken encode_batch {mb_lines / t_tt_batch:.1f} MB/s ({t_tt_batch / t_batch:.2f}x)",
        )
    )


CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tokvec import load_tokenizer
from tokvec.data import write_token_file
tok = load_tokenizer(sys.argv[2])
start = time.perf_counter()
info = write_token_file(tok, sys.argv[3], sys.argv[4])
secs = time.perf_counter() - start
print(json.dumps({"secs": secs, "count": info["count"], "dtype": info["dtype"],
                  "rss_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]}))
"""


def bench_token_file(name: str, path: Path, tok, big_mb: int, tmp: Path, results: list) -> None:
    text = path.read_bytes()
    big = tmp / f"{name}-big.txt"
    with open(big, "wb") as f:
        for _ in range(max(1, big_mb * 10**6 // len(text))):
            f.write(text)
    size_mb = big.stat().st_size / 1e6
    tok.save(tmp / "tok.json")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "src"), str(tmp / "tok.json"), str(big), str(tmp / "ids.bin")],
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout)
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "import tokvec, tokvec.data, numpy, tiktoken; print([int(l.split()[1]) / 1024 for l in "
            "open('/proc/self/status') if l.startswith('VmHWM:')][0])",
            str(ROOT / "src"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    results.append(
        (
            f"token file {name} ({size_mb:.0f} MB corpus -> {r['count'] / 1e6:.0f} M {r['dtype']} ids)",
            f"{size_mb / r['secs']:.1f} MB/s",
            f"peak RSS {r['rss_mb']:.0f} MB",
            f"(python + imports alone: {float(base.stdout):.0f} MB)",
        )
    )
    big.unlink()
    (tmp / "ids.bin").unlink()


TRAIN_CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tokvec import BPETokenizer
start = time.perf_counter()
tok = BPETokenizer.train(sys.argv[2], vocab_size=int(sys.argv[3]), allow_smaller=True)
print(json.dumps({"secs": time.perf_counter() - start, "engine": tok.trained_by,
                  "rss_mb": [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]}))
"""


def bench_train_memory(size_mb: int, src_dirs: dict[str, Path], timeout: float, results: list) -> None:
    """Peak RSS of BPE training (vocab 4096, child processes) on text without whitespace (issue 11):
    tang-poems repeated to ``size_mb`` with its newlines and spaces removed (pieces still end at its
    punctuation), and with every non-letter removed (one letter run: without a bound, one piece)."""
    poems = CORPORA["chinese"].read_text(encoding="utf-8")
    shapes = {"no whitespace": "".join(poems.split()), "letters only": "".join(c for c in poems if c.isalpha())}
    with tempfile.TemporaryDirectory() as tmp_name:
        for shape, text in shapes.items():
            path = Path(tmp_name) / "corpus.txt"
            data = text.encode("utf-8")
            with open(path, "wb") as f:
                for _ in range(max(1, size_mb * 10**6 // len(data))):
                    f.write(data)
            mb = path.stat().st_size / 1e6
            for side, src in src_dirs.items():
                try:
                    out = subprocess.run(
                        [sys.executable, "-c", TRAIN_CHILD, str(src), str(path), "4096"],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=timeout,
                    )
                    r = json.loads(out.stdout)
                    cell = f"{r['secs']:.0f} s, peak RSS {r['rss_mb']:.0f} MB ({r['engine']})"
                except subprocess.TimeoutExpired:
                    cell = f"stopped after {timeout:.0f} s"
                results.append((f"train vocab 4096 on {mb:.0f} MB of tang-poems, {shape}", side, cell, ""))
                print(" | ".join(results[-1]), flush=True)
            path.unlink()
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); from tokvec import "
            "BPETokenizer; import rustbpe, tokenizers, tiktoken, numpy; print([int(l.split()[1]) / 1024 "
            "for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])",
            str(ROOT / "src"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    results.append(("python + imports alone", f"peak RSS {float(base.stdout):.0f} MB", "", ""))


ENCODE_CHILD = """
import hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
from tokvec import load_tokenizer
from tokvec.data import write_token_file
tok = load_tokenizer(sys.argv[2])
tok.encode("warm up")
base = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
start = time.perf_counter()
info = write_token_file(tok, sys.argv[3], sys.argv[4], num_threads=1)
secs = time.perf_counter() - start
rss = [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"secs": secs, "count": info["count"], "blake2b": info["blake2b"], "base_mb": base, "rss_mb": rss}))
"""


def bench_encode_memory(size_mb: int, src_dirs: dict[str, Path], timeout: float, results: list) -> None:
    """Token file of ``size_mb`` of text with no whitespace cut (issue 11 item 16), in child
    processes, one encoding thread: peak RSS above the child's own baseline (interpreter, imports,
    tokenizer) and MB/s, per checkout. The ids of every checkout are compared by content hash."""
    poems = CORPORA["chinese"].read_text(encoding="utf-8")
    english = CORPORA["english"].read_text(encoding="utf-8")
    shapes = {
        "English as it is (normal path)": english,
        "Chinese as it is (normal path)": poems,
        "Chinese, no whitespace (punctuation kept)": "".join(poems.split()),
        "Chinese letters only (one run)": "".join(c for c in poems if c.isalpha()),
        "English letters only (one run)": "".join(c for c in english if c.isalpha()),
    }
    from tokvec import BPETokenizer

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tok = BPETokenizer.train_from_texts([poems, english], vocab_size=4096)
        tok.save(tmp / "tok.json")
        for shape, text in shapes.items():
            path = tmp / "corpus.txt"
            data = text.encode("utf-8")
            with open(path, "wb") as f:
                for _ in range(max(1, size_mb * 10**6 // len(data))):
                    f.write(data)
            mb = path.stat().st_size / 1e6
            hashes = set()
            for side, src in src_dirs.items():
                try:
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-c",
                            ENCODE_CHILD,
                            str(src),
                            str(tmp / "tok.json"),
                            str(path),
                            str(tmp / "ids.bin"),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=timeout,
                    )
                    r = json.loads(out.stdout)
                    hashes.add(r["blake2b"])
                    cell = (
                        f"{mb / r['secs']:.1f} MB/s, peak RSS +{r['rss_mb'] - r['base_mb']:.0f} MB "
                        f"(baseline {r['base_mb']:.0f} MB)"
                    )
                except subprocess.TimeoutExpired:
                    cell = f"stopped after {timeout:.0f} s"
                results.append((f"token file, {mb:.0f} MB, {shape}", side, cell, ""))
                print(" | ".join(results[-1]), flush=True)
            results[-1] = (*results[-1][:3], "same ids" if len(hashes) == 1 else "IDS DIFFER")
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="vocab 4096 only, 50 MB token file")
    parser.add_argument("--big-mb", type=int, default=200)
    parser.add_argument("--skip-sentencepiece", action="store_true")
    parser.add_argument("--engines-only", action="store_true", help="only section 0 (training engines)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine in section 0 (best kept)")
    parser.add_argument("--corpus", choices=sorted(CORPORA), action="append", help="with --engines-only: only these")
    parser.add_argument(
        "--memory-mb",
        type=int,
        default=0,
        help="only: peak RSS of training on this many MB of text without whitespace (issue 11)",
    )
    parser.add_argument(
        "--encode-memory-mb",
        type=int,
        default=0,
        help="only: token file peak RSS and MB/s on this many MB of text with no whitespace cut (issue 11)",
    )
    parser.add_argument("--before-src", type=Path, help="with --memory-mb: also run another checkout's src/")
    parser.add_argument("--timeout", type=float, default=1800, help="with --memory-mb: seconds per child")
    args = parser.parse_args()
    missing = [str(p) for p in CORPORA.values() if not p.is_file()]
    if missing:
        print(
            f"skipping the BPE benchmark: corpus file(s) not found: {', '.join(missing)} "
            f"(expected next to the repository in ../shared/data)"
        )
        return
    vocabs = [4096] if args.quick else [4096, 32000]
    big_mb = 50 if args.quick else args.big_mb
    if args.skip_sentencepiece:
        globals()["train_sentencepiece"] = lambda *a: "skipped"
    results: list[tuple] = []
    if args.encode_memory_mb:
        src_dirs = {
            **({f"{args.before_src}": args.before_src} if args.before_src else {}),
            "this checkout": ROOT / "src",
        }
        bench_encode_memory(args.encode_memory_mb, src_dirs, args.timeout, results)
        print_table(results)
        return
    if args.memory_mb:
        src_dirs = {
            "this checkout": ROOT / "src",
            **({f"{args.before_src}": args.before_src} if args.before_src else {}),
        }
        bench_train_memory(args.memory_mb, src_dirs, args.timeout, results)
        print_table(results)
        return
    if args.engines_only:
        for name, path in CORPORA.items():
            if not args.corpus or name in args.corpus:
                bench_engines(name, path, args.repeat, results)
        print_table(results)
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name, path in CORPORA.items():
            toks = bench_train(name, path, vocabs, tmp, results)
            tok, hf = toks[vocabs[-1]]
            text = path.read_text(encoding="utf-8")
            bench_encode(name, text, tok, hf, results)
            bench_token_file(name, path, toks[vocabs[0]][0], big_mb, tmp, results)
            for row in results[-len(vocabs) - 3 :]:
                print(" | ".join(row), flush=True)
    print_table(results)


def print_table(results: list) -> None:
    from _machine import cpu_name

    cpu = cpu_name()
    print(
        f"\n{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores ({cpu}), "
        f"load average {os.getloadavg()[0]:.1f}\n"
    )
    width = max(map(len, results), default=4)
    print("| measurement | tokvec | " + " | ".join(["peer"] * (width - 2)) + " |\n" + "| --- " * width + "|")
    for row in results:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
