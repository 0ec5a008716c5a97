"""Run directories: a trained model and everything needed to resume it, written so a crash never
leaves a half checkpoint, read back without unpickling anything.

A run directory holds::

    config.json            {"format": "tokvec.run", "version": 1, "model": {...}, "train": {...},
                            "tokenizer": {"kind", "fingerprint"}, "step", "rng", "data", "files": {...}}
    model.safetensors      the weights (tied tensors stored once)
    optimizer.safetensors  optimizer tensors; its param_groups as JSON in the header metadata
    tokenizer.json         Tokenizer.save()
    metrics.jsonl          {"step", "split": "train"|"val", "loss", "lr", "tokens_per_s", "elapsed_s"}

Crash safety: every file is written to a temporary name, fsynced and renamed (``tokvec._io.atomic_open``).
A checkpoint spans several files, so ``config.json`` is the commit point: the new weights are first
written as ``.model.safetensors.pending`` (and the optimizer likewise), then ``config.json`` - which
records each file's sha256 - is renamed into place, then the pending files are renamed over the old
ones. Killed before the config rename, the old files and old config still agree; killed after it,
the loader finds the files whose hash the config names among the final and pending names.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .._io import atomic_open, read_json, write_json
from ..errors import FormatError

FORMAT = "tokvec.run"
VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
TOKENIZER_FILE = "tokenizer.json"
METRICS_FILE = "metrics.jsonl"


class CheckpointError(FormatError):
    """A run directory is missing, incomplete or corrupted."""


# -- tensors <-> safetensors bytes -------------------------------------------------------------
def _dedupe(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store tensors that share memory (tied embeddings) once; return (unique, alias -> stored name)."""
    unique: dict[str, torch.Tensor] = {}
    seen: dict[tuple, str] = {}
    aliases: dict[str, str] = {}
    for name, t in tensors.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = t.detach().contiguous().cpu()
    return unique, aliases


def _header_metadata(data: bytes, path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (8-byte little-endian header size, then JSON)."""
    try:
        (n,) = struct.unpack("<Q", data[:8])
        return json.loads(data[8:8 + n]).get("__metadata__") or {}
    except (struct.error, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a safetensors file (unreadable header)") from None


def _load_tensors(data: bytes, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    meta = _header_metadata(data, path)
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"{path} is truncated or corrupted ({e}); "
                              f"restore it from a backup or train again") from None
    return tensors, meta


# -- files named by config.json ----------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pending(run_dir: Path, name: str) -> Path:
    return run_dir / f".{name}.pending"


def _read_committed(run_dir: Path, name: str, expected: Mapping[str, Any]) -> tuple[bytes, Path]:
    """Bytes of the committed version of ``name``: the final file, or the pending one a crash left
    before it was renamed. Anything else means the file was damaged after it was written."""
    final = run_dir / name
    for candidate in (final, _pending(run_dir, name)):
        if candidate.is_file():
            data = candidate.read_bytes()
            if _sha256(data) == expected["sha256"]:
                return data, candidate
    if not final.is_file():
        raise CheckpointError(f"{final} is missing; the run directory {run_dir} is incomplete")
    size = final.stat().st_size
    what = "truncated" if size < expected["bytes"] else "corrupted"
    raise CheckpointError(f"{final} is {what} ({size} bytes, sha256 does not match the {expected['bytes']} bytes "
                          f"recorded in {CONFIG_FILE}); restore it from a backup or train again")


def _write_pending(run_dir: Path, name: str, data: bytes) -> dict[str, Any]:
    with atomic_open(_pending(run_dir, name), "wb") as f:
        f.write(data)
    return {"sha256": _sha256(data), "bytes": len(data)}


# -- optimizer state without pickle ------------------------------------------------------------
def optimizer_to_bytes(optimizer: torch.optim.Optimizer | Mapping[str, Any]) -> bytes:
    """``optimizer.state_dict()`` as safetensors: tensors as ``state/<param>/<name>``, the rest as JSON.

    ``optimizer`` may also be a ready state dict (a sharded run gathers one on every rank first)."""
    sd = optimizer if isinstance(optimizer, Mapping) else optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{pid}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}/{key}"] = value
    meta = {"format": "tokvec.optimizer", "class": "AdamW" if isinstance(optimizer, Mapping) else type(optimizer).__name__,
            "param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}
    return st_save(tensors, metadata=meta)


def optimizer_from_bytes(data: bytes, path: Path) -> dict:
    """Inverse of :func:`optimizer_to_bytes`: a dict for ``optimizer.load_state_dict``."""
    tensors, meta = _load_tensors(data, path)
    if meta.get("format") != "tokvec.optimizer":
        raise CheckpointError(f"{path} is not a tokvec optimizer state (format {meta.get('format')!r})")
    state: dict[int, dict[str, Any]] = {}
    # sorted: safetensors hands keys back in no fixed order, and processes that load the same file must
    # walk the state identically (under FSDP each moment is re-sharded by a collective, in this order)
    for key, t in sorted(tensors.items(), key=lambda kv: _state_key(kv[0])):
        _, pid, name = key.split("/", 2)
        state.setdefault(int(pid), {})[name] = t
    for key, value in json.loads(meta["scalars"]).items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    state = {pid: dict(sorted(st.items())) for pid, st in sorted(state.items())}
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}


def _state_key(key: str) -> tuple[int, str]:
    _, pid, name = key.split("/", 2)  # "state/<param id>/<name>"
    return int(pid), name


# -- RNG state as JSON -------------------------------------------------------------------------
def rng_state() -> dict[str, str]:
    """The global torch CPU RNG state, base64 (JSON-safe)."""
    return {"torch_cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")}


def set_rng_state(state: Mapping[str, str]) -> None:
    raw = base64.b64decode(state["torch_cpu"])
    torch.set_rng_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))


# -- public API --------------------------------------------------------------------------------
def save_run(run_dir: str | os.PathLike, *, model: torch.nn.Module | Mapping[str, torch.Tensor], tokenizer,
             model_config: Mapping,
             train_config: Mapping, step: int, optimizer: torch.optim.Optimizer | Mapping | None = None,
             extra: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint of ``model`` (and ``optimizer``) at ``step`` into ``run_dir``, crash-safely.

    ``model`` is the module, or its full state dict (what a sharded run gathers on rank 0).
    ``extra`` (JSON-serialisable: data position, elapsed time, ...) is stored in config.json.
    Returns the path of config.json.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok_path = run_dir / TOKENIZER_FILE
    if not tok_path.is_file() or _tokenizer_fingerprint(tok_path) != tokenizer.fingerprint():
        tokenizer.save(tok_path)

    tensors, aliases = _dedupe(model if isinstance(model, Mapping) else model.state_dict())
    weights = st_save(tensors, metadata={"format": "tokvec.model", "step": str(step),
                                         "aliases": json.dumps(aliases)})
    files = {MODEL_FILE: _write_pending(run_dir, MODEL_FILE, weights)}
    if optimizer is not None:
        files[OPTIMIZER_FILE] = _write_pending(run_dir, OPTIMIZER_FILE, optimizer_to_bytes(optimizer))

    config = {"format": FORMAT, "version": VERSION, "model": dict(model_config), "train": dict(train_config),
              "tokenizer": {"kind": tokenizer.kind, "fingerprint": tokenizer.fingerprint()},
              "step": int(step), "rng": rng_state(), **dict(extra or {}), "files": files}
    write_json(run_dir / CONFIG_FILE, config)  # the commit point
    for name in files:
        os.replace(_pending(run_dir, name), run_dir / name)
    if optimizer is None and (run_dir / OPTIMIZER_FILE).exists():
        os.unlink(run_dir / OPTIMIZER_FILE)  # stale: would not match this checkpoint
    return run_dir / CONFIG_FILE


def _tokenizer_fingerprint(path: Path) -> str | None:
    from ..tokenizers import load_tokenizer

    try:
        return load_tokenizer(path).fingerprint()
    except (FormatError, OSError):
        return None


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CONFIG_FILE).is_file()


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The validated config.json of a run directory."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"no run directory at {run_dir}; train one with `tokvec train --out {run_dir}`")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} holds no checkpoint (no {CONFIG_FILE}); "
                              f"train one with `tokvec train --out {run_dir}`")
    config = read_json(path)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path} is not a tokvec run config (format {found!r}, expected {FORMAT!r})")
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path} is {FORMAT} version {config.get('version')!r}; "
                              f"this tokvec reads version {VERSION}")
    missing = [k for k in ("model", "train", "tokenizer", "step", "files") if k not in config]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; the file was edited or is incomplete")
    return config


def load_weights(run_dir: str | os.PathLike, model: torch.nn.Module, config: Mapping | None = None) -> None:
    """Load the checkpoint's weights into ``model`` (strict: every parameter must match)."""
    run_dir = Path(run_dir)
    config = config or read_run_config(run_dir)
    data, path = _read_committed(run_dir, MODEL_FILE, config["files"][MODEL_FILE])
    tensors, meta = _load_tensors(data, path)
    for alias, name in json.loads(meta.get("aliases", "{}")).items():
        tensors[alias] = tensors[name]
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the model in {CONFIG_FILE}: {e}") from None


def load_optimizer(run_dir: str | os.PathLike, optimizer: torch.optim.Optimizer,
                   config: Mapping | None = None) -> None:
    """Restore the optimizer state saved with the checkpoint."""
    run_dir = Path(run_dir)
    config = config or read_run_config(run_dir)
    if OPTIMIZER_FILE not in config["files"]:
        raise CheckpointError(f"{run_dir} was saved without optimizer state; it cannot be resumed exactly")
    data, path = _read_committed(run_dir, OPTIMIZER_FILE, config["files"][OPTIMIZER_FILE])
    try:
        optimizer.load_state_dict(optimizer_from_bytes(data, path))
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not fit this optimizer: {e}") from None


def load_run_tokenizer(run_dir: str | os.PathLike, config: Mapping | None = None):
    """The run's tokenizer, checked against the fingerprint in config.json."""
    from ..tokenizers import load_tokenizer

    run_dir = Path(run_dir)
    config = config or read_run_config(run_dir)
    path = run_dir / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run directory is incomplete")
    tok = load_tokenizer(path)
    want = config["tokenizer"].get("fingerprint")
    if want and tok.fingerprint() != want:
        raise CheckpointError(f"{path} has fingerprint {tok.fingerprint()} but {CONFIG_FILE} expects {want}; "
                              f"the tokenizer file was replaced")
    return tok


def load_run(run_dir: str | os.PathLike):
    """``(model, tokenizer, config_dict)`` of a run directory; the model is in eval mode on the CPU."""
    from ..model.config import ModelConfig
    from ..model.gpt import GPT

    config = read_run_config(run_dir)
    model = GPT(ModelConfig.from_dict(config["model"]))
    load_weights(run_dir, model, config)
    return model.eval(), load_run_tokenizer(run_dir, config), config


def load_model(run_dir: str | os.PathLike):
    """The trained model of a run directory written by ``tokvec train`` (weights + config), in eval mode.

    (What ``GPT.from_run`` did: loading a run is a job of this layer, which the model does not import.)
    """
    return load_run(run_dir)[0]


# -- metrics log -------------------------------------------------------------------------------
def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The records of metrics.jsonl (an unreadable trailing line from an old crash is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def write_metrics(run_dir: str | os.PathLike, records: list[dict]) -> None:
    """Rewrite metrics.jsonl with ``records``, atomically (the log is small: one line per eval)."""
    with atomic_open(Path(run_dir) / METRICS_FILE, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
