"""Safetensors reading: the header checked once, each tensor read with positioned reads straight into
the tensor that keeps it, and the file's sha256 computed in the same pass.

The format (:mod:`tokvec.runs.tensorfile` writes it)::

    8 bytes     N, the header's length, little-endian
    N bytes     JSON: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [a, b]}, ...}
    ...         each tensor's raw little-endian bytes, at data_offsets relative to the end of the header

Why not the library: ``safetensors.torch.load`` needs the file as ``bytes`` and builds new tensors
from them (two copies of the weights before a model holds a third), and ``safe_open`` memory-maps
the file, whose touched pages count in the resident memory on top of the model (2.0x the weights at
peak for GPT-2). Neither can hash the bytes it reads, so checking a run's sha256 would read the file
once more. Here the destination is allocated first (a model's parameters, an optimizer's moments),
the bytes land in it 1 MiB at a time, and each slice is hashed while it is still in the cache: the
peak is the destination plus one slice (see benchmarks/bench_hf.py).

Every field of the header is untrusted: dtype, shape, byte range inside the file and no two tensors
overlapping are checked before a byte of data is read; the error class is the caller's (a run's
``CheckpointError``, an import's ``HFModelError``), so each layer keeps its own messages.

Shape legend: a tensor ``(*shape)`` is read as stored; a destination may differ in dtype and device
(cast and moved slice by slice), never in shape.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import sys
from pathlib import Path
from typing import IO, Callable, Mapping, NamedTuple, Sequence

import torch
from torch import Tensor

from .errors import FormatError

# safetensors' dtype names, in the order of safetensors 0.8's Dtype enum (the writer, runs/tensorfile.py,
# stores these and sorts a file's tensors by this order)
DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3": torch.float8_e4m3fn,
    "I16": torch.int16,
    "U16": torch.uint16,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I32": torch.int32,
    "U32": torch.uint32,
    "F32": torch.float32,
    "C64": torch.complex64,
    "F64": torch.float64,
    "I64": torch.int64,
    "U64": torch.uint64,
}
MAX_HEADER = 100 << 20  # the safetensors library's own limit on the JSON header
CHUNK = 1 << 20  # bytes per read: hashed while still in the cache (as the writer hashes what it writes)


class Entry(NamedTuple):
    """One tensor of a file: its name, dtype (and safetensors' name for it), shape, and where its
    bytes are: ``start`` (absolute, from the beginning of the file) and ``nbytes``."""

    name: str
    dtype_name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    nbytes: int


class TensorFile:
    """A safetensors file opened for reading; the header parsed and checked on opening.

    ``entries`` (name -> :class:`Entry`, in file order) and ``metadata`` (str -> str) describe it;
    :meth:`read_into` / :meth:`copy_into` read one tensor, :meth:`load` reads every tensor into the
    destinations given and returns the sha256 of the whole file. A damaged header raises ``error``
    (a :class:`~tokvec.errors.FormatError` subclass) naming the file and what is wrong with it.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path, *, error: type[FormatError] = FormatError) -> None:
        if sys.byteorder != "little":
            raise RuntimeError("tokvec reads safetensors on little-endian machines only")
        self.path, self.error = Path(path), error
        self._f: IO[bytes] = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed by close())
        try:
            self.size = self.path.stat().st_size
            self._head, self.metadata, self.entries = self._parse_header()
        except BaseException:
            self._f.close()
            raise

    def __enter__(self) -> "TensorFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    @property
    def data_start(self) -> int:
        return len(self._head)

    # -- the header ----------------------------------------------------------------------------------
    def _parse_header(self) -> tuple[bytes, dict[str, str], dict[str, Entry]]:
        path, size, error = self.path, self.size, self.error
        first = self._f.read(8)
        n = struct.unpack("<Q", first)[0] if len(first) == 8 else None
        if n is None or n > min(size - 8, MAX_HEADER):
            raise error(f"{path} is not a safetensors file (header length {n} in a {size}-byte file)")
        blob = self._read_exact(8, n)
        try:
            header = json.loads(blob)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise error(f"{path} is not a safetensors file (its header is not JSON: {e})") from None
        if not isinstance(header, dict):
            raise error(f"{path} is not a safetensors file (its header is not a JSON object)")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise error(f"{path}: the safetensors __metadata__ must map names to strings")
        data_start, data_size, entries = 8 + n, size - 8 - n, []
        for name, entry in header.items():
            try:
                dtype, shape, (a, b) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
                ok = all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (*shape, a, b))
            except (TypeError, KeyError, ValueError):
                ok = False
            if not ok:
                raise error(f"{path}: the header entry of tensor {name!r} is malformed: {entry!r}")
            if dtype not in DTYPES:
                raise error(
                    f"{path}: tensor {name!r} has the unknown dtype {dtype!r} (tokvec reads {', '.join(DTYPES)})"
                )
            nbytes = math.prod(shape) * DTYPES[dtype].itemsize
            if b - a != nbytes or b > data_size:
                raise error(
                    f"{path}: tensor {name!r} {list(shape)} {dtype} should span {nbytes} bytes, its "
                    f"offsets say {a}..{b} of {data_size}; the file is truncated or corrupted"
                )
            entries.append(Entry(name, dtype, DTYPES[dtype], shape, data_start + a, nbytes))
        entries.sort(key=lambda e: (e.start, e.nbytes))
        for before, after in zip(entries, entries[1:]):
            if after.start < before.start + before.nbytes:
                raise error(
                    f"{path}: tensors {before.name!r} and {after.name!r} overlap (bytes "
                    f"{before.start - data_start}..{before.start - data_start + before.nbytes} and "
                    f"{after.start - data_start}..{after.start - data_start + after.nbytes}); the file is corrupted"
                )
        return first + blob, metadata, {e.name: e for e in entries}

    # -- one tensor ------------------------------------------------------------------------------------
    def _read_exact(self, offset: int, n: int) -> bytes:
        self._f.seek(offset)
        data = self._f.read(n)
        if len(data) != n:
            raise self.error(f"{self.path} ends at byte {offset + len(data)}, inside its header; the file is truncated")
        return data

    def _fill(self, offset: int, view: memoryview, name: str) -> None:
        """Read ``len(view)`` bytes at ``offset`` into ``view`` (a positioned read, no copy)."""
        self._f.seek(offset)
        done = 0
        while done < len(view):
            n = self._f.readinto(view[done:])
            if not n:
                raise self.error(f"{self.path} ends inside tensor {name!r}; the file is truncated")
            done += n

    def read_into(self, name: str, out: Tensor, start_row: int = 0) -> None:
        """Fill ``out`` (a contiguous CPU tensor of the stored dtype, ``(rows, *shape[1:])``) with the
        stored rows of ``name`` from ``start_row`` on, straight into its memory."""
        e = self.entries[name]
        row_bytes = (math.prod(e.shape[1:]) if len(e.shape) > 1 else 1) * e.dtype.itemsize
        if out.numel():
            self._fill(e.start + start_row * row_bytes, _bytes_view(out), name)

    def copy_into(self, name: str, out: Tensor, *, transposed: bool = False, block_bytes: int = 32 << 20) -> None:
        """Copy stored tensor ``name`` into ``out`` (its transpose when ``transposed``; cast to
        ``out``'s dtype and device): directly into ``out``'s memory when dtype and layout allow,
        else in row blocks of about ``block_bytes``."""
        e = self.entries[name]
        out = out.detach()
        if not transposed and _direct(out, e.dtype):
            self.read_into(name, out)
            return
        n = e.shape[0] if e.shape else 1
        width = math.prod(e.shape[1:]) if len(e.shape) > 1 else 1
        step = max(1, block_bytes // (e.dtype.itemsize * max(width, 1)))
        if not e.shape:  # a scalar: one "row"
            block = torch.empty((), dtype=e.dtype)
            self.read_into(name, block)
            out.copy_(block)
            return
        for a in range(0, n, step):
            block = torch.empty((min(step, n - a), *e.shape[1:]), dtype=e.dtype)
            self.read_into(name, block, a)
            if transposed:
                out[:, a : a + step].copy_(block.t())
            else:
                out[a : a + step].copy_(block)

    # -- the whole file --------------------------------------------------------------------------------
    def load(
        self, targets: Mapping[str, Sequence[Tensor]], *, progress: Callable[[int, int], None] | None = None
    ) -> str:
        """Read every tensor of the file, in file order, into each of its ``targets`` (stored name ->
        destination tensors of the stored shape, any dtype and device; a name with no destination is
        only hashed); return the sha256 (hex) of every byte of the file, header and gaps included.

        A CPU destination of the stored dtype receives the bytes directly; any other goes through one
        reused ``CHUNK``-sized buffer; a further destination of the same name is copied from the first.
        No copy of the file is ever held. ``progress(done_bytes, total_bytes)`` after each tensor.
        The bytes are hashed only as they are read, so a caller that compares the digest learns that
        the file is damaged after the destinations were written: it must then discard them."""
        sha = hashlib.sha256(self._head)
        staging = torch.empty(0, dtype=torch.uint8)
        pos, total, done = self.data_start, self.size - self.data_start, 0
        with torch.no_grad():
            for e in self.entries.values():
                if e.start > pos:  # bytes no tensor claims: hashed all the same
                    staging = self._hash_range(sha, pos, e.start, staging)
                outs = [t.detach() for t in targets.get(e.name, ())]
                for t in outs:
                    if tuple(t.shape) != e.shape:
                        raise RuntimeError(
                            f"{e.name}: destination {tuple(t.shape)}, stored {e.shape}"
                        )  # a caller's bug
                if not outs:
                    staging = self._hash_range(sha, e.start, e.start + e.nbytes, staging)
                elif _direct(outs[0], e.dtype):
                    view = _bytes_view(outs[0]) if e.nbytes else memoryview(b"")
                    for a in range(0, e.nbytes, CHUNK):
                        chunk = view[a : a + CHUNK]
                        self._fill(e.start + a, chunk, e.name)
                        sha.update(chunk)
                else:
                    staging = self._read_staged(sha, e, outs[0], staging)
                for t in outs[1:]:
                    t.copy_(outs[0])
                pos = e.start + e.nbytes
                done += e.nbytes
                if progress is not None:
                    progress(done, total)
            if pos < self.size:
                self._hash_range(sha, pos, self.size, staging)
        return sha.hexdigest()

    def sha256(self) -> str:
        """The sha256 (hex) of the whole file, read ``CHUNK`` bytes at a time into one buffer."""
        return self.load({})

    def _read_staged(self, sha: "hashlib._Hash", e: Entry, out: Tensor, staging: Tensor) -> Tensor:
        """Read ``e`` slice by slice into ``staging`` and copy each slice into its place in ``out``
        (cast to ``out``'s dtype, moved to its device)."""
        if not out.is_contiguous():  # a strided destination: the whole tensor once, then one copy
            whole = torch.empty(e.shape, dtype=e.dtype)
            if e.nbytes:
                view = _bytes_view(whole)
                self._fill(e.start, view, e.name)
                sha.update(view)
            out.copy_(whole)
            return staging
        staging = _grow(staging, min(CHUNK, e.nbytes))
        flat, item = out.view(-1), e.dtype.itemsize
        for a in range(0, e.nbytes, CHUNK):
            n = min(CHUNK, e.nbytes - a)
            view = memoryview(staging[:n].numpy())
            self._fill(e.start + a, view, e.name)
            sha.update(view)
            flat[a // item : (a + n) // item].copy_(staging[:n].view(e.dtype))
        return staging

    def _hash_range(self, sha: "hashlib._Hash", a: int, b: int, staging: Tensor) -> Tensor:
        staging = _grow(staging, min(CHUNK, b - a))
        for x in range(a, b, CHUNK):
            view = memoryview(staging[: min(CHUNK, b - x)].numpy())
            self._fill(x, view, "(none)")
            sha.update(view)
        return staging


def _direct(out: Tensor, dtype: torch.dtype) -> bool:
    """Whether bytes of ``dtype`` can be read straight into ``out``'s memory."""
    return out.dtype == dtype and out.device.type == "cpu" and out.is_contiguous() and type(out) in (Tensor,)


def _bytes_view(t: Tensor) -> memoryview:
    """The memory of contiguous CPU tensor ``t`` as writable bytes (no copy)."""
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _grow(buffer: Tensor, nbytes: int) -> Tensor:
    return buffer if buffer.numel() >= nbytes else torch.empty(nbytes, dtype=torch.uint8)


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of any file, read ``CHUNK`` bytes at a time (no copy of the file in memory)."""
    sha, buf = hashlib.sha256(), bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            sha.update(view[:n])
    return sha.hexdigest()
