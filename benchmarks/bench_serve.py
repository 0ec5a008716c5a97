"""tokvec serve latency: one keystroke's refresh (tokens + vectors + attention) on a `small`-preset run.

    python benchmarks/bench_serve.py [--repeats 20] [--chars 200]

A `small` run (context 256, d_model 384, 6 layers x 6 heads; weights untrained: the time does not
depend on their values) with a char tokenizer; a text of 200 characters (English and Chinese), so
200 tokens. One refresh = the three POSTs the page sends after a pause in typing: /api/tokens,
/api/vectors, /api/attention (layer 0, the page's default; the last layer, which runs all 6 blocks,
is timed too). Sides interleaved round by round, one torch thread:
- server: the requests through the app in process (Starlette's TestClient); the time is each
  answer's Server-Timing header (request in -> answer ready, JSON encoding included), summed;
- library: the same library calls made directly (tokenizer.tokens/encode, trace, attention_maps).
Also printed: the process's CPU time per server refresh, which a loaded machine does not inflate.
Reported: median of each over the rounds, and server/library (what the web layer costs).
Target: server <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import tokvec
from tokvec import GPT, CharTokenizer, ModelConfig
from tokvec.viz import attention_maps, trace

sys.path.insert(0, str(Path(__file__).parent))
from _machine import cpu_name  # noqa: E402

TEXT = (
    "ROMEO: But soft, what light through yonder window breaks? It is the east, and Juliet is the sun. "
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
)


def make_small_run(root: Path, text: str) -> Path:
    tok = CharTokenizer.train([text])
    config = ModelConfig.preset("small", vocab_size=tok.vocab_size)
    torch.manual_seed(0)
    tokvec.save_run(
        root / "small", model=GPT(config).eval(), tokenizer=tok, model_config=config.to_dict(), train_config={}, step=0
    )
    return root / "small"


def server_ms(client, text: str, layer: int = 0, cpu: list | None = None) -> float:
    total, start = 0.0, time.process_time()
    for path, body in (("/api/tokens", {}), ("/api/vectors", {}), ("/api/attention", {"layer": layer})):
        r = client.post(path, json={"run": "small", "text": text, **body})
        r.raise_for_status()
        total += float(r.headers["server-timing"].split("dur=")[1])
    if cpu is not None:
        cpu.append((time.process_time() - start) * 1000)
    return total


def library_ms(source, text: str, layer: int = 0) -> float:
    start = time.perf_counter()
    source.tokenizer.tokens(text), source.tokenizer.encode(text)
    trace(text, source.tokenizer, source.model.embed)
    attention_maps(source.model, source.tokenizer, text, layer=layer)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--chars", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from starlette.testclient import TestClient

    from tokvec.serve import load_sources
    from tokvec.serve.app import create_app

    text = (TEXT * (args.chars // len(TEXT) + 1))[: args.chars]
    with tempfile.TemporaryDirectory() as tmp:
        sources = load_sources([make_small_run(Path(tmp), TEXT)])
        with TestClient(create_app(sources)) as client:
            server_ms(client, text), library_ms(sources[0], text)  # warm-up
            last = sources[0].model.config.n_layers - 1
            times: dict[str, list[float]] = {
                "server": [],
                "library": [],
                "server_last": [],
                "library_last": [],
                "cpu": [],
            }
            for _ in range(args.repeats):
                times["server"].append(server_ms(client, text, cpu=times["cpu"]))
                times["library"].append(library_ms(sources[0], text))
                times["server_last"].append(server_ms(client, text, last))
                times["library_last"].append(library_ms(sources[0], text, last))
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()[0]
    print(f"{cpu_name()}, torch {torch.__version__}, 1 torch thread, load average {load:.1f}")
    print(
        f"small preset, char tokenizer, {args.chars} characters = {len(sources[0].tokenizer.encode(text))} tokens, "
        f"median of {args.repeats} interleaved rounds"
    )
    print(
        "| tokens + vectors + attention | server (Server-Timing, summed), ms | library calls alone, ms "
        "| server/library |\n| --- | ---: | ---: | ---: |"
    )
    for label, key in (("attention layer 0 (page default)", ""), (f"attention layer {last} (last)", "_last")):
        server, library = med["server" + key], med["library" + key]
        print(f"| {label} | {server:.1f} | {library:.1f} | {server / library:.2f} |")
    print(
        f"CPU time of the process per layer-0 refresh (all threads; what an idle machine would take): "
        f"{med['cpu']:.1f} ms"
    )
    print(f"target server <= 150 ms (layer 0): {'met' if med['server'] <= 150 else 'NOT met'}")


if __name__ == "__main__":
    main()
