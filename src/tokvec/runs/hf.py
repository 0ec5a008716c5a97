"""Hugging Face model directories <-> tokvec run directories: ``tokvec import`` and ``tokvec export``.

    import:  config.json + model.safetensors (or shards) + tokenizer.json  ->  a run directory (step 0)
    export:  a run directory  ->  config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
             generation_config.json that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load as they are

The mapping of configs and tensors is :mod:`tokvec.model.hf`, the loading of a HF directory with its
tokenizer :mod:`tokvec.runs.pretrained`; this module writes run and HF directories, atomically. The exported weights are streamed into
``model.safetensors`` one tensor at a time (peak memory: the model plus its largest tensor).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .._io import write_json
from ..errors import TokvecValueError
from ..model.hf import config_to_hf, export_problems, hf_tensors, is_hf_directory
from ..tokenizers.hf_export import to_hf_json
from . import checkpoint as ckpt
from .pretrained import load_hf
from .tensorfile import TensorRow, save_tensors
from .train import TrainConfig


def import_hf(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tokenizer: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Turn a local HF model directory into a tokvec run directory ``out`` (step 0, no optimizer state).

    ``generate``, ``trace``, ``plot``, ``neighbors``, ``report`` read it like any run; ``train
    --init-from`` fine-tunes it. Returns the run directory."""
    out = Path(out)
    if Path(source).resolve() == out.resolve():
        raise TokvecValueError(f"--out {out} is the Hugging Face directory itself; import into a new directory")
    if ckpt.has_checkpoint(out):
        raise TokvecValueError(f"{out} already holds a checkpoint or model (config.json); pick another --out")
    model, tok, hf = load_hf(source, tokenizer=tokenizer, progress=progress)
    train_config = TrainConfig.finetune(str(source), out=str(out)).to_dict()
    ckpt.save_run(
        out,
        model=model,
        tokenizer=tok,
        model_config=model.config.to_dict(),
        train_config=train_config,
        step=0,
        extra={"source": {"format": "huggingface", "path": str(source), "model_type": hf["model_type"]}},
    )
    return out


def export_hf(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the model and tokenizer of run directory ``run`` as a HF directory ``out``; returns ``out``.

    GPT-2-shaped runs (learned, layernorm, gelu) become ``GPT2LMHeadModel``, Llama-shaped ones (rope,
    rmsnorm, swiglu, with or without GQA) ``LlamaForCausalLM`` (``Qwen2ForCausalLM`` with q/k/v biases
    only); anything else is an error naming the fields that block it."""
    out = Path(out)
    model, tok, run_config = ckpt.load_run(run)
    model_type, blocking = export_problems(model.config)
    hf = config_to_hf(model.config, bos_id=tok.bos_id, eos_id=tok.eos_id, pad_id=tok.pad_id)  # raises if blocked
    to_hf_json(tok)  # the tokenizer's export errors come before any file is written
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        if (out / "config.json").is_file() and is_hf_directory(out):
            raise TokvecValueError(
                f"{out} already holds a Hugging Face model; pass --force (overwrite=True) "
                f"to replace it, or pick another --out"
            )
        raise TokvecValueError(f"{out} exists and is not empty; export into a new or empty directory")
    if (out / "config.json").is_file() and not is_hf_directory(out):
        raise TokvecValueError(f"{out} holds a tokvec run; export into another directory")
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(
        out / "model.safetensors", hf_tensors(model, model_type), metadata={"format": "pt"}, progress=progress
    )
    tok.save_hf(out)
    write_json(
        out / "generation_config.json",
        {
            "bos_token_id": tok.bos_id,
            "eos_token_id": tok.eos_id,
            "pad_token_id": tok.pad_id,
            "do_sample": True,
            "max_length": model.config.context_length,
        },
    )
    write_json(out / "config.json", {**hf, "tokvec": {"run": str(run), "step": run_config["step"]}})
    return out


def write_safetensors(
    path: Path, tensors, *, metadata: dict[str, str] | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Write a safetensors file from :func:`~tokvec.model.hf.hf_tensors`' ``(name, make, shape, dtype)``
    rows, building one tensor at a time (streamed, atomic: :func:`tokvec.runs.tensorfile.save_tensors`).
    ``progress(done_bytes, total_bytes)`` is called after each tensor. Returns ``{"bytes": ...}`` (no
    checksum: nothing records one for a HF directory, and hashing costs as much as writing)."""
    rows = [TensorRow(name, tuple(shape), dtype, make) for name, make, shape, dtype in tensors]
    return {"bytes": save_tensors(path, rows, metadata=metadata, sha256=False, progress=progress)["bytes"]}
