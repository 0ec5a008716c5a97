"""Run directories: a trained model and everything needed to resume it, written so a crash never
leaves a half checkpoint, read back without unpickling anything.

A run directory holds::

    config.json            {"format": "tokvec.run", "version": 1, "model": {...}, "train": {...},
                            "tokenizer": {"kind", "fingerprint"}, "step", "data", "files": {...}}
    model.safetensors      the weights (tied tensors stored once)
    optimizer.safetensors  optimizer tensors; its param_groups as JSON in the header metadata
    tokenizer.json         Tokenizer.save()
    metrics.jsonl          {"step", "split": "train"|"val", "loss", "lr", "tokens_per_s", "elapsed_s"}

Weights and optimizer state are streamed into their files tensor by tensor, hashed while written
(:mod:`tokvec.runs.tensorfile`): a save holds no copy of the weights besides the model's own. They
are read back the same way (:mod:`tokvec._tensorread`): straight from the file into the parameters
of a model built without random init, hashed while read, so a load holds one copy too.

Crash safety: every file is written to a temporary name, fsynced and renamed (``tokvec._io.atomic_open``).
A checkpoint spans several files, so ``config.json`` is the commit point: the new weights are first
written as ``.model.safetensors.pending`` (and the optimizer likewise), then ``config.json`` - which
records each file's sha256 - is renamed into place, then the pending files are renamed over the old
ones. Killed before the config rename, the old files and old config still agree; killed after it,
the loader finds the files whose hash the config names among the final and pending names.

No RNG state is stored: the loop reseeds dropout and draws batches from (seed, step) at every step,
so a resume is bit-exact without one (the "rng" entry of runs written before is ignored).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .._io import atomic_open, read_json, write_json
from .._schema import Doc, metric_record, parse_json, read_json_lines
from .._tensorread import TensorFile, file_sha256
from ..errors import FormatError, TokvecValueError
from ..model.aliases import drop_aliases, find_aliases, refill_aliases
from .tensorfile import save_tensors

FORMAT = "tokvec.run"
VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
TOKENIZER_FILE = "tokenizer.json"
METRICS_FILE = "metrics.jsonl"
CHECKSUM_KEY = "checksum"  # sha256 of config.json's other keys: a hand edit is detected, not trusted
_HEX = frozenset("0123456789abcdef")


class CheckpointError(FormatError):
    """A run directory is missing, incomplete or corrupted."""


# -- tensors <-> safetensors bytes -------------------------------------------------------------
def _dedupe(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store tensors that share memory (tied embeddings) once; return (unique, alias -> stored name).
    The unique tensors are not copied: each is made contiguous and moved to the CPU when written."""
    unique, aliases = drop_aliases(tensors)
    return {name: t.detach() for name, t in unique.items()}, aliases


def all_finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in ``t`` (any shape). Two reductions, no mask as large as ``t`` (8x faster
    than ``isfinite(t).all()`` on a CPU): a NaN propagates into the max and the min, and an infinity
    is one of them. (Not ``aminmax``: the training loop's tests count those as range checks.)"""
    if t.is_complex():
        return bool(torch.isfinite(t).all())
    if not t.is_floating_point() or not t.numel():
        return True
    return bool(torch.isfinite(t.amax())) and bool(torch.isfinite(t.amin()))


# -- files named by config.json ----------------------------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pending(run_dir: Path, name: str) -> Path:
    return run_dir / f".{name}.pending"


def read_committed(
    run_dir: Path,
    name: str,
    expected: Mapping[str, Any],
    targets: Callable[[TensorFile], Mapping[str, Sequence[torch.Tensor]]],
    config_name: str = CONFIG_FILE,
) -> tuple[dict[str, str], Path]:
    """Read the committed version of the safetensors file ``name`` (``expected``: its ``files`` entry
    in ``config_name``) into the tensors ``targets(file)`` names (stored name -> destinations, see
    :meth:`TensorFile.load`); returns the file's metadata and the path read.

    The committed version is the final file, or the pending one a crash left before it was renamed:
    the first whose size and sha256 match ``expected``. The sha256 is computed while the bytes go
    into the destinations (one pass, no copy of the file in memory), so it is known only after
    they were written: when this raises, the destinations hold a damaged file's values, and the
    caller must discard them (load_run's model is never returned; a resume never starts).
    ``targets`` may raise a ``CheckpointError`` (a tensor that does not fit): raised as is when the
    file is the committed one, else the file is just not it. Anything else means the file was damaged
    after it was written."""
    final = run_dir / name
    for candidate in (final, _pending(run_dir, name)):
        if not candidate.is_file() or candidate.stat().st_size != expected["bytes"]:
            continue  # a size that differs never has the recorded hash: not even read
        try:
            f = TensorFile(candidate, error=CheckpointError)
        except CheckpointError:  # an unreadable header: the error, if it is the committed file
            if file_sha256(candidate) == expected["sha256"]:
                raise
            continue
        with f:
            try:
                destinations = targets(f)
            except CheckpointError:
                if f.sha256() == expected["sha256"]:
                    raise
                continue
            if f.load(destinations) == expected["sha256"]:
                return f.metadata, candidate
    if not final.is_file():
        raise CheckpointError(f"{final} is missing; the run directory is incomplete")
    size = final.stat().st_size
    what = "truncated" if size < expected["bytes"] else "corrupted"
    raise CheckpointError(
        f"{final} is {what} ({size} bytes, sha256 does not match the {expected['bytes']} bytes "
        f"recorded in {config_name}); restore it from a backup or train again"
    )


def module_targets(
    module: torch.nn.Module, f: TensorFile, config_name: str = CONFIG_FILE
) -> dict[str, list[torch.Tensor]]:
    """Where each tensor of ``f`` goes in ``module``: stored name -> the module's tensors that take it,
    checked as strictly as ``load_state_dict(strict=True)`` (every parameter and persistent buffer
    filled, no stored tensor left over, shapes equal; dtypes may differ: cast on the way in).

    Tied tensors: the file's metadata ``"aliases"`` (alias -> stored name) fills an alias from the
    stored tensor, and the module's own shared tensors (a tied head) are filled once."""
    aliases = _meta_json(f.metadata, "aliases", f.path, "{}")
    if not isinstance(aliases, dict) or not all(isinstance(v, str) and v in f.entries for v in aliases.values()):
        raise CheckpointError(f"{f.path}: metadata 'aliases' must map tensor names to stored tensors")
    # every name load_state_dict would ask for: the state dict, with the names its hooks dropped put back
    wanted = module.state_dict(keep_vars=True)
    shared = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    own = find_aliases(shared)
    refill_aliases(wanted, own)
    # stored name of each name the file provides: its own, its aliases, then the module's (as the
    # model's load_state_dict pre-hook refills a tied head from the embedding)
    source = {name: name for name in f.entries}
    for alias, kept in (*aliases.items(), *own.items()):
        if alias not in source and kept in source:
            source[alias] = source[kept]
    missing = [name for name in wanted if name not in source]
    unexpected = [name for name in source if name not in wanted]
    where = f"{f.path} does not fit the model in {config_name}"
    for names, what in ((missing, "is missing from the file"), (unexpected, "is not in the model")):
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise CheckpointError(f"{where}: tensor {names[0]!r} {what}{more}; was it saved from another model?")
    targets: dict[str, list[torch.Tensor]] = {}
    for name, t in wanted.items():
        stored = f.entries[source[name]]
        if stored.shape != tuple(t.shape):
            raise CheckpointError(
                f"{where}: tensor {name!r} has shape {list(stored.shape)} in the file, {list(t.shape)} in the model"
            )
        outs = targets.setdefault(stored.name, [])
        if not any(t is o for o in outs):  # a tied head is the embedding's own parameter: filled once
            outs.append(t)
    return targets


def _write_pending(
    run_dir: Path, name: str, content: bytes | tuple[Mapping[str, torch.Tensor], Mapping[str, str]]
) -> dict[str, Any]:
    """Write the pending file of ``name`` atomically (a temporary file, fsynced, renamed); returns the
    ``{"sha256", "bytes"}`` entry the config records. ``content``: the file's bytes, or ``(tensors,
    metadata)`` streamed as safetensors tensor by tensor and hashed while written (no copy in memory)."""
    if not isinstance(content, (bytes, bytearray, memoryview)):
        tensors, metadata = content
        return save_tensors(_pending(run_dir, name), tensors, metadata=metadata)
    with atomic_open(_pending(run_dir, name), "wb") as f:
        f.write(content)
    return {"sha256": _sha256(content), "bytes": len(content)}


# -- optimizer state without pickle ------------------------------------------------------------
def optimizer_tensors(
    optimizer: torch.optim.Optimizer | Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``optimizer.state_dict()`` as (tensors, safetensors metadata): tensors as ``state/<param>/<name>``,
    the rest as JSON in the metadata. The tensors are the optimizer's own (not copied).

    ``optimizer`` may also be a ready state dict (a sharded run gathers one on every rank first)."""
    sd = optimizer if isinstance(optimizer, Mapping) else optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{pid}/{key}"] = value.detach()
            else:
                scalars[f"{pid}/{key}"] = value
    meta = {
        "format": "tokvec.optimizer",
        "class": "AdamW" if isinstance(optimizer, Mapping) else type(optimizer).__name__,
        "param_groups": json.dumps(sd["param_groups"]),
        "scalars": json.dumps(scalars),
    }
    return tensors, meta


def optimizer_from_tensors(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: Path) -> dict:
    """The optimizer file (:func:`optimizer_tensors` as safetensors) read back, as its ``tensors`` and
    safetensors ``meta``: a dict for ``optimizer.load_state_dict``."""
    if meta.get("format") != "tokvec.optimizer":
        raise CheckpointError(f"{path} is not a tokvec optimizer state (format {meta.get('format')!r})")
    state: dict[int, dict[str, Any]] = {}
    # sorted: the file's order is not the state's, and processes that load the same file must
    # walk the state identically (under FSDP each moment is re-sharded by a collective, in this order)
    for key in tensors:
        parts = key.split("/", 2)
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
            raise CheckpointError(f"{path}: optimizer tensor {key[:40]!r} is not 'state/<param id>/<name>'")
    for key, t in sorted(tensors.items(), key=lambda kv: _state_key(kv[0])):
        _, pid, name = key.split("/", 2)
        state.setdefault(int(pid), {})[name] = t
    scalars = _meta_json(meta, "scalars", path)
    groups = _meta_json(meta, "param_groups", path)
    if not isinstance(scalars, dict) or not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise CheckpointError(f"{path}: optimizer metadata must hold a scalars object and a param_groups list")
    for key, value in scalars.items():
        pid, _, name = key.partition("/")
        if not pid.isdigit() or not name or isinstance(value, (dict, list)):
            raise CheckpointError(f"{path}: optimizer scalar {key[:40]!r} is not '<param id>/<name>' with a number")
        state.setdefault(int(pid), {})[name] = value
    state = {pid: dict(sorted(st.items())) for pid, st in sorted(state.items())}
    return {"state": state, "param_groups": groups}


def _meta_json(meta: Mapping[str, str], key: str, path: Path, default: str | None = None) -> Any:
    if key not in meta and default is None:
        raise CheckpointError(f"{path}: the safetensors metadata lacks {key!r}; the file is not tokvec's")
    try:
        return parse_json(meta.get(key, default), f"{path} (metadata {key!r})")
    except FormatError as e:
        raise CheckpointError(str(e)) from None


def _state_key(key: str) -> tuple[int, str]:
    _, pid, name = key.split("/", 2)  # "state/<param id>/<name>"
    return int(pid), name


# -- public API --------------------------------------------------------------------------------
def save_run(
    run_dir: str | os.PathLike,
    *,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    tokenizer,
    model_config: Mapping,
    train_config: Mapping,
    step: int,
    optimizer: torch.optim.Optimizer | Mapping | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint of ``model`` (and ``optimizer``) at ``step`` into ``run_dir``, crash-safely.

    ``model`` is the module, or its full state dict (what a sharded run gathers on rank 0).
    ``extra`` (JSON-serialisable: data position, elapsed time, ...) is stored in config.json.
    Returns the path of config.json.
    """
    run_dir = Path(run_dir)
    tensors, aliases = _dedupe(model if isinstance(model, Mapping) else model.state_dict())
    bad = [name for name, t in tensors.items() if not all_finite(t)]
    if bad:
        raise CheckpointError(
            f"{', '.join(bad[:3])} hold NaN or infinite values; refusing to save step {step} as a "
            f"checkpoint in {run_dir} (the last good one is kept); training diverged, lower the lr"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_tokenizer(run_dir, tokenizer)
    # streamed: header, then tensor by tensor, hashed as written (no copy of the weights in memory)
    blobs = {MODEL_FILE: (tensors, {"format": "tokvec.model", "step": str(step), "aliases": json.dumps(aliases)})}
    if optimizer is not None:
        blobs[OPTIMIZER_FILE] = optimizer_tensors(optimizer)
    config = {
        "format": FORMAT,
        "version": VERSION,
        "model": dict(model_config),
        "train": dict(train_config),
        "tokenizer": {"kind": tokenizer.kind, "fingerprint": tokenizer.fingerprint()},
        "step": int(step),
        **dict(extra or {}),
    }
    path = commit_files(run_dir, CONFIG_FILE, blobs, config)
    if optimizer is None and (run_dir / OPTIMIZER_FILE).exists():
        os.unlink(run_dir / OPTIMIZER_FILE)  # stale: would not match this checkpoint
    return path


def commit_files(
    run_dir: str | os.PathLike,
    config_name: str,
    blobs: Mapping[str, bytes | tuple[Mapping[str, torch.Tensor], Mapping[str, str]]],
    config: Mapping[str, Any],
) -> Path:
    """Write ``blobs`` (file name -> bytes, or -> ``(tensors, metadata)`` to stream a safetensors file
    without building it in memory) and ``config_name`` into ``run_dir`` as one crash-safe commit.

    Each blob goes to ``.NAME.pending`` first; then ``config`` - with ``"files"``: each blob's sha256
    and size, and its checksum - is written atomically (the commit point); then the pending files
    are renamed into place. A kill at any moment leaves either the old run or the new one
    (:class:`~tokvec.runs.lock.RunClaim` rolls a committed pending file forward, removes the others).
    Every run kind saves through here: LM checkpoints (config.json) and classifiers (classifier.json)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {name: _write_pending(run_dir, name, data) for name, data in blobs.items()}
    write_json(run_dir / config_name, seal_config({**config, "files": files}))  # the commit point
    for name in files:
        os.replace(_pending(run_dir, name), run_dir / name)
    return run_dir / config_name


def save_tokenizer(run_dir: Path, tokenizer) -> None:
    """Write ``tokenizer.json`` (atomically) unless the run already holds this very tokenizer."""
    tok_path = run_dir / TOKENIZER_FILE
    if not tok_path.is_file() or _tokenizer_fingerprint(tok_path) != tokenizer.fingerprint():
        tokenizer.save(tok_path)


def committed_files(doc: Doc, allowed: tuple[str, ...]) -> dict[str, dict]:
    """The ``files`` entry of a run config, checked: only ``allowed`` names, each a sha256 and a size."""
    files = doc.obj("files")
    for name in files.data:
        if name not in allowed:
            raise files.error(name, f"one of {', '.join(map(repr, allowed))} (no other file is recorded)", name)
    return {name: _sha_entry(files, name) for name in files.data}


def _tokenizer_fingerprint(path: Path) -> str | None:
    from ..tokenizers import load_tokenizer

    try:
        return load_tokenizer(path).fingerprint()
    except (FormatError, OSError):
        return None


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / CONFIG_FILE).is_file()


def config_checksum(config: Mapping[str, Any]) -> str:
    """sha256 of a config dict without its checksum key (canonical JSON: sorted keys, UTF-8)."""
    body = {k: v for k, v in config.items() if k != CHECKSUM_KEY}
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def seal_config(config: Mapping[str, Any]) -> dict:
    """``config`` with its :func:`config_checksum` under ``"checksum"`` (what every writer stores)."""
    return {**{k: v for k, v in config.items() if k != CHECKSUM_KEY}, CHECKSUM_KEY: config_checksum(config)}


def check_config_checksum(config: Mapping[str, Any], path: Path) -> None:
    """Refuse a config.json whose content no longer matches its checksum (it was edited by hand).

    A deliberate edit is accepted by deleting the ``"checksum"`` line too: the file is then read like
    one from before checksums (every value still validated) and sealed again at the next save."""
    want = config.get(CHECKSUM_KEY)
    if want is None:
        return
    if not isinstance(want, str) or config_checksum(config) != want:
        raise CheckpointError(
            f'{path} was edited after tokvec wrote it (its content no longer matches its "checksum"); '
            f'restore the file, or, to keep a deliberate edit, delete the "checksum" line as well'
        )


def _sha_entry(doc: Doc, name: str) -> dict:
    entry = doc.obj(name)
    digest = entry.str("sha256")
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise entry.error("sha256", "64 lowercase hex digits", digest)
    return {"sha256": digest, "bytes": entry.int("bytes", lo=0, hi=2**50)}


def validate_run_config(config: Any, path: Path) -> dict:
    """Check every field tokvec reads from a run's config.json (types, ranges, required keys);
    one CheckpointError line names the file, the key and what was expected."""
    doc = Doc(config, str(path))
    fmt = doc.raw("format", None)
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is not a tokvec run config (format {fmt!r}, expected {FORMAT!r})")
    if doc.raw("version", None) != VERSION:
        raise CheckpointError(
            f"{path} is {FORMAT} version {doc.raw('version', None)!r}; this tokvec reads version {VERSION}"
        )
    doc.missing(("model", "train", "tokenizer", "step", "files"))
    check_config_checksum(config, path)
    model = doc.obj("model")
    from ..model.config import ModelConfig

    try:
        ModelConfig.from_dict(model.data).check_memory(what="the model it describes")
    except TokvecValueError as e:
        raise CheckpointError(f"{path}: 'model' is not a valid model config: {e}") from None
    train = doc.obj("train")
    train.optional("corpus", lambda k: train.str(k))
    train.str("encoding", nonempty=True, default=None)
    train.str("tokenizer", nonempty=True, default=None)
    tok = doc.obj("tokenizer")
    tok.str("kind", nonempty=True, max_len=64)
    tok.optional("fingerprint", lambda k: tok.str(k, max_len=128))
    doc.int("step", lo=0, hi=2**62)
    doc.obj("files").missing((MODEL_FILE,))
    committed_files(doc, (MODEL_FILE, OPTIMIZER_FILE))
    if "rng" in doc.data:
        doc.obj("rng").str("torch_cpu", max_len=1 << 16)
    if doc.data.get("data") is not None:
        data = doc.obj("data")
        for key in ("tokens", "position", "val_start", "val_tokens"):
            data.int(key, lo=0, hi=2**62, default=None)
        data.optional("sha256", lambda k: data.str(k, max_len=128))
    doc.float("elapsed_s", lo=0.0, default=None)
    doc.int("world_size", lo=1, hi=1 << 20, default=None)
    return dict(config)


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The validated config.json of a run directory (see :func:`validate_run_config`)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not run_dir.is_dir():
        raise CheckpointError(f"no run directory at {run_dir}; train one with `tokvec train --out {run_dir}`")
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} holds no checkpoint (no {CONFIG_FILE}); train one with `tokvec train --out {run_dir}`"
        )
    return validate_run_config(read_json(path), path)


def load_weights(run_dir: str | os.PathLike, model: torch.nn.Module, config: Mapping | None = None) -> None:
    """Load the checkpoint's weights into ``model`` (strict: every parameter must match), read from
    the file straight into its parameters (no copy of the weights besides the model's own).

    On an error the model holds part of a damaged file: discard it (:func:`read_committed`)."""
    run_dir = Path(run_dir)
    config = config or read_run_config(run_dir)
    read_committed(run_dir, MODEL_FILE, config["files"][MODEL_FILE], lambda f: module_targets(model, f))


def load_optimizer(
    run_dir: str | os.PathLike,
    optimizer: torch.optim.Optimizer,
    config: Mapping | None = None,
    *,
    config_name: str = CONFIG_FILE,
) -> None:
    """Restore the optimizer state saved with the checkpoint (its tensors read once, into tensors
    the optimizer then keeps: ``load_state_dict`` does not copy a tensor of the right dtype and device).
    ``config_name``: the commit file ``config`` was read from (a classifier run's is classifier.json)."""
    run_dir = Path(run_dir)
    config = config or read_run_config(run_dir)
    if OPTIMIZER_FILE not in config["files"]:
        raise CheckpointError(f"{run_dir} was saved without optimizer state; it cannot be resumed exactly")
    tensors: dict[str, torch.Tensor] = {}

    def fresh(f: TensorFile) -> dict[str, list[torch.Tensor]]:
        tensors.clear()
        tensors.update({name: torch.empty(e.shape, dtype=e.dtype) for name, e in f.entries.items()})
        return {name: [t] for name, t in tensors.items()}

    meta, path = read_committed(run_dir, OPTIMIZER_FILE, config["files"][OPTIMIZER_FILE], fresh, config_name)
    try:
        optimizer.load_state_dict(optimizer_from_tensors(tensors, meta, path))
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path} does not fit this optimizer: {e}") from None


def load_run_tokenizer(run_dir: str | os.PathLike, config: Mapping | None = None, *, config_name: str = CONFIG_FILE):
    """The run's tokenizer, checked against the fingerprint in its config (``config_name``: the commit
    file ``config`` was read from; a classifier run's is classifier.json)."""
    from ..tokenizers import load_tokenizer

    run_dir = Path(run_dir)
    config = config or read_run_config(run_dir)
    path = run_dir / TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run directory is incomplete")
    tok = load_tokenizer(path)
    want = config["tokenizer"].get("fingerprint")
    if want and tok.fingerprint() != want:
        raise CheckpointError(
            f"{path} has fingerprint {tok.fingerprint()} but {config_name} expects {want}; "
            f"the tokenizer file was replaced"
        )
    return tok


def refuse_changed_flags(run_dir: str | os.PathLike, diffs: list[str]) -> None:
    """A resumed run continues as saved: refuse it when the flags differ from the checkpoint's (``diffs``:
    one "key: checkpoint X, now Y" each)."""
    if diffs:
        raise TokvecValueError(
            f"the checkpoint in {run_dir} does not match the flags: "
            + "; ".join(diffs)
            + ". Drop those flags to continue as saved, or train a new run"
        )


def load_run(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """``(model, tokenizer, config_dict)`` of a run directory; the model is in eval mode on ``device``
    (``"cpu"``, ``"cuda:1"``, ``"auto"``, ...). Weights are read on the CPU and then moved
    (``map_location`` semantics): a run saved on any device loads on any other."""
    from ..device import resolve_device
    from ..model.config import ModelConfig
    from ..model.gpt import GPT

    target = resolve_device(device)  # a bad device fails before the weights are read
    config = read_run_config(run_dir)
    model = GPT.empty(ModelConfig.from_dict(config["model"]))  # no random init: every weight is read
    load_weights(run_dir, model, config)
    return model.to(target).eval(), load_run_tokenizer(run_dir, config), config


def load_model(run_dir: str | os.PathLike, *, device: str | torch.device = "cpu"):
    """The trained model of a run directory written by ``tokvec train`` (weights + config), in eval mode
    on ``device`` (``"cpu"``, ``"cuda:0"``, ``"auto"``, ...: :func:`tokvec.device.resolve_device`).

    (What ``GPT.from_run`` did: loading a run is a job of this layer, which the model does not import.)
    """
    return load_run(run_dir, device=device)[0]


# -- metrics log -------------------------------------------------------------------------------
def read_metrics(path: str | os.PathLike, *, strict: bool = True) -> list[dict]:
    """Loss records of a ``metrics.jsonl`` (each line checked: step, split, loss); ``path`` is the file
    or its run directory. A last line cut short by a crash mid-write is always skipped.

    ``strict`` (viewers): a missing file, a bad line or no record at all raises. ``strict=False``
    (resume): a missing file is ``[]`` and unreadable lines are skipped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        if not strict:
            return []
        raise FileNotFoundError(f"no metrics file at {path} (a training run writes {METRICS_FILE})")
    if strict:
        records = [metric_record(record, f"{path} line {number}") for number, record in read_json_lines(path)]
        if not records:
            raise FormatError(f"{path} holds no loss records yet; train for at least one logged step")
        return records
    records = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            records.append(metric_record(parse_json(line, f"{path} line {number}"), f"{path} line {number}"))
        except FormatError:
            continue  # resume keeps what it can read
    return records


def write_metrics(run_dir: str | os.PathLike, records: list[dict]) -> None:
    """Rewrite metrics.jsonl with ``records``, atomically (the log is small: one line per eval)."""
    with atomic_open(Path(run_dir) / METRICS_FILE, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def append_metrics(run_dir: str | os.PathLike, records: list[dict]) -> None:
    """Append ``records`` to metrics.jsonl and fsync (a log written every few steps, too long to
    rewrite each time). A crash mid-append leaves a torn last line: :func:`read_metrics` skips it,
    and a resume rewrites the file with :func:`write_metrics`, which drops it."""
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())
