"""`tokvec env`: what this machine offers a model, and what `--device auto` / `--precision auto` pick."""

from __future__ import annotations

import json

import typer

from . import app, out

_ENGINE_NOTE = {
    "native": " (tokvec's C trainer)",
    "rustbpe": " (tokvec's C trainer is not built: reinstall with a C compiler present for ~4x faster training)",
    "hf": " (neither tokvec's C trainer nor rustbpe is here: pip install rustbpe, or reinstall with a C compiler)",
}


@app.command()
def env(
    as_json: bool = typer.Option(False, "--json", help="One JSON object (paste it into a bug report)."),
) -> None:
    """Versions, devices, threads, the CPU flags that matter, and what auto picks for device and precision."""
    from ..device import describe_environment
    from ..tokenizers.bpe_train import auto_engine

    info = describe_environment()
    info["bpe_engine"] = auto_engine()
    if as_json:
        out.print(json.dumps(info, ensure_ascii=False, indent=2), markup=False, highlight=False, soft_wrap=True)
        return
    gpus = "; ".join(f"{g['device']} {g['name']} (bf16 {'yes' if g['bf16'] else 'no'})" for g in info["cuda_devices"])
    rows = [
        ("tokvec", info["tokvec"]),
        ("python", info["python"]),
        ("platform", info["platform"]),
        ("torch", f"{info['torch']} (CUDA {info['torch_cuda'] or 'none'})"),
        ("tiktoken", info["tiktoken"]),
        ("tokenizers", info["tokenizers"]),
        ("bpe", f"trains with {info['bpe_engine']}" + _ENGINE_NOTE.get(info["bpe_engine"], "")),
        ("devices", ", ".join(info["devices"]) + (f"  [{gpus}]" if gpus else "")),
        ("threads", f"{info['torch_threads']} torch threads, {info['cpu_count']} CPUs"),
        ("cpu", f"capability {info['cpu_capability']}; flags: {', '.join(info['cpu_flags']) or 'none of note'}"),
        ("auto device", f"{info['auto_device']} ({info['auto_device_reason']})"),
        ("auto precision", f"{info['auto_precision']} ({info['auto_precision_reason']})"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.print(f"{key:<{width}}  {value}", markup=False, soft_wrap=True)
