"""Streamed safetensors writing: the header, then each tensor's bytes, hashed while they are written.

The format (what ``safetensors.torch.save`` produces and ``safe_open`` / ``load_file`` read)::

    8 bytes     N, the header's length, little-endian
    N bytes     JSON: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [a, b]}, ...},
                padded with spaces to a multiple of 8
    ...         each tensor's raw little-endian bytes, at data_offsets relative to the end of the header

Tensors are laid out as safetensors 0.8 lays them out (widest dtype first, then by name), so every
tensor starts aligned to its element size, and a file with at most one metadata key is byte for byte
what ``safetensors.torch.save`` returns (more keys: safetensors orders them at random, tokvec sorts).

Why not the library: ``save`` builds the whole file in memory (twice: its buffer, then ``bytes``),
and ``save_file`` writes from pointers but cannot hash what it writes (a second read of the file)
nor build a tensor only when it is written (the transposed weights of an export). Here a row's
``make()`` is called when its bytes are due, so the peak is the source tensors plus one built tensor,
and the sha256 a run's config.json records comes out of the same pass (see benchmarks/bench_hf.py).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, NamedTuple

import torch

from .._io import Writeback, atomic_open
from .._tensorread import DTYPES
from ..errors import TokvecTypeError, TokvecValueError

# safetensors' dtype names, in the order safetensors 0.8 writes them (its Dtype enum, widest last:
# a file lists the last ones first); the reader's table, turned around
_ST_DTYPES = {dtype: name for name, dtype in DTYPES.items()}
_RANK = {dtype: i for i, dtype in enumerate(_ST_DTYPES)}


class TensorRow(NamedTuple):
    """One tensor of a file to write: ``make()`` returns it (any device, any layout) when it is due;
    it must have ``shape`` and ``dtype``, which the header announces before any tensor is built."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    make: Callable[[], torch.Tensor]


def rows_of(tensors: Mapping[str, torch.Tensor]) -> list[TensorRow]:
    """Rows that write ``tensors`` as they are (each made contiguous and moved to the CPU when due)."""
    return [TensorRow(name, tuple(t.shape), t.dtype, lambda t=t: t) for name, t in tensors.items()]


def header_bytes(rows: Iterable[TensorRow], metadata: Mapping[str, str] | None = None) -> tuple[bytes, list[TensorRow]]:
    """The 8-byte length and the padded JSON header of a file holding ``rows``, and the rows in the
    order their bytes follow it. An unsupported dtype is a ``TokvecTypeError`` naming the tensor."""
    rows = sorted(rows, key=lambda r: (-_RANK.get(r.dtype, -1), r.name))
    header: dict[str, Any] = {}
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            bad = next(k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str)))
            raise TokvecTypeError(
                f"safetensors metadata maps strings to strings; {bad!r} maps to "
                f"{type(metadata[bad]).__name__} (store it as JSON text)"
            )
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for row in rows:
        if row.dtype not in _ST_DTYPES:
            raise TokvecTypeError(
                f"tensor {row.name!r} has dtype {row.dtype}, which safetensors does not store "
                f"({', '.join(_ST_DTYPES.values())}); convert it first (e.g. .float())"
            )
        if row.name in header:
            raise TokvecValueError(f"tensor name {row.name!r} appears twice; every tensor of a file needs its own")
        nbytes = torch.Size(row.shape).numel() * row.dtype.itemsize
        header[row.name] = {
            "dtype": _ST_DTYPES[row.dtype],
            "shape": list(row.shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob, rows


def write_tensors(
    f: IO[bytes],
    rows: Iterable[TensorRow],
    *,
    metadata: Mapping[str, str] | None = None,
    sha256: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write a safetensors file into the open binary file ``f``, one tensor at a time; returns
    ``{"sha256": hex digest of every byte written (None when ``sha256`` is false), "bytes": how many}``.

    Bytes go out in 1 MiB slices, each hashed then written: on the benchmark machine one large
    ``write`` cost the kernel 4-6x the time of the same bytes in 1 MiB calls (0.9 s against 0.2 s
    for GPT-2's 498 MB), and a slice hashed is still in the cache when it is copied out. The disk
    starts on each 32 MiB as soon as it is written (:class:`tokvec._io.Writeback`), so the fsync
    that ends an atomic write waits for the tail only.
    ``progress(done_bytes, total_bytes)`` is called after each tensor. A ``make()`` that returns a
    tensor of another shape or dtype than its row announced is a bug of the caller: RuntimeError (the
    file is then incomplete; write it through :func:`tokvec._io.atomic_open` so it never lands)."""
    if sys.byteorder != "little":
        raise RuntimeError("tokvec writes safetensors on little-endian machines only")
    head, rows = header_bytes(rows, metadata)
    sha = hashlib.sha256(head) if sha256 else None
    writeback = Writeback(f)  # the disk starts on the first bytes while the rest are written
    f.write(head)
    writeback.wrote(len(head))
    total = sum(torch.Size(r.shape).numel() * r.dtype.itemsize for r in rows)
    done = 0
    staging = [torch.empty(0, dtype=torch.uint8)]
    for row in rows:
        data = _bytes_of(row, staging)
        for a in range(0, len(data), _CHUNK):
            chunk = data[a : a + _CHUNK]  # hashed while it is still in the cache, then written
            if sha is not None:
                sha.update(chunk)
            f.write(chunk)
            writeback.wrote(len(chunk))
        done += len(data)
        del data
        if progress is not None:
            progress(done, total)
    return {"sha256": sha.hexdigest() if sha is not None else None, "bytes": len(head) + done}


_CHUNK = 1 << 20  # bytes per write (see write_tensors)


def _bytes_of(row: TensorRow, staging: list[torch.Tensor]) -> memoryview:
    """The bytes of ``row``'s tensor: a view of its memory when ``make()`` returns a contiguous CPU
    tensor (a state dict's parameters), else a copy into the reused buffer ``staging[0]`` (a
    transposed view, a GPU tensor): no fresh memory faulted in for every tensor, one copy at a time."""
    t = row.make().detach()
    if tuple(t.shape) != tuple(row.shape) or t.dtype != row.dtype:
        raise RuntimeError(
            f"{row.name}: built {tuple(t.shape)} {t.dtype}, the header says {tuple(row.shape)} {row.dtype}"
        )
    if not t.numel():
        return memoryview(b"")
    if not (t.is_contiguous() and t.device.type == "cpu"):
        nbytes = t.numel() * t.element_size()
        if staging[0].numel() < nbytes:
            staging[0] = torch.empty(nbytes, dtype=torch.uint8)
        t = staging[0][:nbytes].view(t.dtype).view(t.shape).copy_(t)
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def save_tensors(
    path: str | Path,
    rows: Iterable[TensorRow] | Mapping[str, torch.Tensor],
    *,
    metadata: Mapping[str, str] | None = None,
    sha256: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``rows`` (or a name -> tensor mapping) as the safetensors file ``path``, atomically (a
    temporary file, fsynced, renamed); returns ``{"sha256", "bytes"}`` of the file (see
    :func:`write_tensors`)."""
    if isinstance(rows, Mapping):
        rows = rows_of(rows)
    with atomic_open(path, "wb") as f:
        return write_tensors(f, rows, metadata=metadata, sha256=sha256, progress=progress)
