"""Atomic file writes: a crash at any moment leaves either the old file or the new one, never half."""

from __future__ import annotations

import ctypes
import functools
import json
import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from .errors import OutputPathError

TEMP_SUFFIX = ".tmp"  # atomic_open's temporary files: .NAME.XXXXXXXX.tmp next to the target


# /dev/stdout and friends name a file descriptor this process already holds: write to that descriptor
# (opening the path again would truncate a file the shell opened for appending).
_FD_ALIASES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def _fd_alias(path: Path) -> int | None:
    """The descriptor number ``path`` names (/dev/stdout, /dev/fd/N, /proc/self/fd/N), else None."""
    text = os.path.normpath(os.path.abspath(path))
    if text in _FD_ALIASES:
        return _FD_ALIASES[text]
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        if text.startswith(prefix) and text[len(prefix) :].isdigit():
            return int(text[len(prefix) :])
    return None


def write_target(path: str | os.PathLike) -> tuple[str, Path]:
    """How :func:`atomic_open` writes ``path``: ``("replace", file)`` (temporary file renamed over
    ``file``; a symlink's target is replaced, the link kept) or ``("through", path)`` (a FIFO, a
    device, /dev/stdout: written in place, never renamed over). A directory is refused."""
    path = Path(path)
    if _fd_alias(path) is not None:
        return "through", path
    try:
        st = os.stat(path)  # follows symlinks: what the name leads to
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {e.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"{path} is a directory; give a file name to write, e.g. {path}/out")
    if st is not None and not stat.S_ISREG(st.st_mode):
        return "through", path  # FIFO, character or block device, socket
    if path.is_symlink():
        return "replace", Path(os.path.realpath(path))
    return "replace", path


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched. A path that is
    not a regular file is never renamed over: a FIFO, a device (``/dev/null``) or ``/dev/stdout`` is
    written through in place, and a symlink keeps its link while its target is replaced.
    """
    how, path = write_target(path)
    if how == "through":
        fd = _fd_alias(path)
        # a descriptor is written at its own offset (an fd opened by name is never truncated twice)
        with os.fdopen(os.dup(fd), mode, **kwargs) if fd is not None else open(path, mode, **kwargs) as f:
            yield f
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual permissions
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


WRITEBACK_BYTES = 32 << 20  # Writeback's default interval


class Writeback:
    """Start the disk writes of a large file while it is still being written, so that the fsync
    :func:`atomic_open` ends with waits only for the tail (the same as RocksDB's ``bytes_per_sync``).

    Call :meth:`wrote` after each ``write`` with the bytes written; every ``every`` bytes it flushes
    ``f`` and asks the kernel to start writing the new range to disk without waiting for it (Linux
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``). A hint only: where the call does not exist (macOS,
    Windows) or fails (a pipe, a device), nothing happens and the final fsync does all the work.
    Measured on GPT-2's 498 MB export: the fsync after the last write fell from ~0.28 s to ~0.04 s
    (benchmarks/bench_hf.py)."""

    def __init__(self, f: IO, every: int | None = None) -> None:
        self.f, self.every = f, every or WRITEBACK_BYTES
        self.written = 0  # bytes written through this object
        self.started = 0  # bytes whose writeback was asked for
        try:
            self._fd = f.fileno()
            self._base = f.tell()  # the file's offset when this object took over
        except (AttributeError, OSError, ValueError):
            self._fd = None

    def wrote(self, n: int) -> None:
        self.written += n
        if self._fd is not None and self.written - self.started >= self.every:
            self.f.flush()
            start_writeback(self._fd, self._base + self.started, self.written - self.started)
            self.started = self.written


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``length`` bytes of the open file ``fd`` from ``offset`` to
    disk, without waiting; True when it was asked (Linux), False when it cannot be (other systems,
    a file that is not a regular file)."""
    call = _sync_file_range()
    if call is None:
        return False
    return call(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages in the range, do not wait


@functools.cache
def _sync_file_range():
    """libc's ``sync_file_range`` with its argument types (Linux only), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


def clean_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files :func:`atomic_open` leaves in ``directory`` when its process is
    killed mid-write (``.NAME.XXXXXXXX.tmp``). Call it only while no other writer uses the directory
    (under its run lock). Returns what was removed."""
    removed = []
    for p in Path(directory).glob(f".*{TEMP_SUFFIX}"):
        if p.is_file() and not p.is_symlink():
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_output(
    out: str | os.PathLike, inputs: Iterable[str | os.PathLike], *, flag: str = "--out", out_is_dir: bool = False
) -> None:
    """Refuse an output that would overwrite what the command reads: ``out`` is one of ``inputs``
    (the same file after resolving links, hard links included), lies inside an input directory, or
    (``out_is_dir``, or ``out`` an existing directory) holds an input file.

    Call it before any work starts, with every file and directory the command will read.
    """
    out = Path(out)
    resolved = Path(os.path.realpath(out))
    out_dir = out_is_dir or out.is_dir()
    for item in inputs:
        item = Path(item)
        real = Path(os.path.realpath(item))
        if item.is_dir():
            if _inside(resolved, real):
                raise OutputPathError(
                    f"{flag} {out} lies inside the input directory {item}, which this command "
                    f"reads; write it outside {item}"
                )
        same = real == resolved
        if not same and out.exists() and item.exists():
            try:
                same = os.path.samefile(out, item)
            except OSError:
                same = False
        if same:
            raise OutputPathError(
                f"{flag} {out} is the input file {item}; writing it would destroy the input. Pick another {flag}"
            )
        if out_dir and item.exists() and _inside(real, resolved):
            raise OutputPathError(
                f"{flag} {out} holds the input {item}, which this command would overwrite or "
                f"remove; move the input out of {out} or pick another {flag}"
            )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty UTF-8 JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a parse error, invalid UTF-8, an integer too long or nesting too deep for
    Python all become one FormatError that names the file (see :mod:`tokvec._schema`)."""
    from ._schema import read_json_file

    return read_json_file(path)
