"""Claiming a run directory before writing it: its kind, an exclusive lock, leftovers of a crash.

Every command that writes a run directory (``tokvec train``, ``tokvec classify train``, ``tokvec
positional compare``, an import) enters :class:`RunClaim` first, before any work starts::

    with RunClaim("runs/x", "lm", resume=False, force=False) as claim:
        ...  # train, checkpoint; the lock is held until the block ends

It holds the rules in one place:

- **kind**: ``run.json`` records what the directory holds (``lm``, ``classifier``, ``imported``,
  ``positional-compare``). Writing another kind into it is refused, and so is a directory of files
  tokvec did not write (unless ``force``: tokvec then writes its own file names among them).
- **overwrite**: a directory that already holds a finished run of the same kind is refused unless
  the caller resumes it or passes ``force`` (which removes the old run's files before the new run
  writes anything, so old and new files never mix).
- **lock**: ``fcntl.flock`` on ``.lock`` (the holder's pid written in it) for the whole run; a second
  writer gets :class:`RunLockedError` naming that pid. The kernel drops the lock when its process
  dies, so a lock file left by a killed run never blocks a resume.
- **leftovers**: the temporary files of writes a killed process never finished are removed, and a
  checkpoint file committed but not yet renamed into place is rolled forward.
- **no empty directory**: when the claim created the directory and the block fails before the run
  committed anything, the directory is removed again.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, TypeVar

from .._io import TEMP_SUFFIX, clean_temp_files, read_json, write_json
from ..errors import FormatError, RunDirError, RunLockedError

MARKER_FILE = "run.json"
LOCK_FILE = ".lock"
MARKER_FORMAT = "tokvec.rundir"

# kind -> (the file whose presence means the run committed something, the files a run of that kind owns)
_LM_FILES = (
    "config.json",
    "model.safetensors",
    "optimizer.safetensors",
    "tokenizer.json",
    "metrics.jsonl",
    "tokens.bin",
    "tokens.bin.json",
    ".model.safetensors.pending",
    ".optimizer.safetensors.pending",
)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lm": ("config.json", _LM_FILES),
    "imported": ("config.json", _LM_FILES),
    "classifier": (
        "classifier.json",
        (
            "classifier.json",
            "classifier.safetensors",
            "optimizer.safetensors",
            "tokenizer.json",
            "metrics.jsonl",
            ".classifier.safetensors.pending",
            ".optimizer.safetensors.pending",
        ),
    ),
    "positional-compare": ("compare.csv", ("compare.csv", "compare.png")),
}
FOREIGN = "foreign"  # a non-empty directory tokvec did not write
_OWN = (MARKER_FILE, LOCK_FILE)


def run_kind(path: str | os.PathLike) -> str | None:
    """What the directory ``path`` holds: a kind of :data:`KINDS`, :data:`FOREIGN` (other files), or
    None (missing or empty). Runs written before ``run.json`` existed are recognised by their files."""
    path = Path(path)
    if not path.is_dir():
        return None
    marker = path / MARKER_FILE
    if marker.is_file():
        try:
            data = read_json(marker)
        except FormatError:
            data = None
        kind = data.get("kind") if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else None
        if kind in KINDS:
            return kind
    config = path / "config.json"
    if config.is_file():
        try:
            data = read_json(config)
        except FormatError:
            data = None
        if isinstance(data, dict) and data.get("format") == "tokvec.run":
            return "lm"
    for kind in ("classifier", "positional-compare"):
        if (path / KINDS[kind][0]).is_file():
            return kind
    return FOREIGN if _others(path) else None


def _others(path: Path) -> list[str]:
    """Names in ``path`` that no tokvec writer put there (not the lock, the marker, or a temporary
    file of an atomic write in progress or killed)."""
    return sorted(
        p.name
        for p in path.iterdir()
        if p.name not in _OWN and not (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))
    )


def _foreign_names(path: Path, limit: int = 3) -> str:
    names = _others(path)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock`` holding the owner's pid; released on :meth:`release`
    or when the process dies (the kernel drops it, so a stale file never blocks anyone)."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock rather than no run
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_pid(fd)
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                who = f"process {holder}" if holder is not None else "another process"
                raise RunLockedError(
                    f"{self.directory} is being written by {who} (it holds {self.path}); "
                    f"wait for it to finish or stop it, or pick another --out",
                    pid=holder,
                ) from None
            try:  # the file may have been replaced between open and flock: then lock the new one
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunClaim:
    """Check, lock and prepare the run directory ``path`` for a run of ``kind`` (see the module doc).

    ``resume``: the caller continues the run already there (it must be of ``kind``).
    ``force``: replace a finished run of ``kind``, or write among files tokvec did not write.
    ``inputs``: files and directories the run reads; refused when they lie inside ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str,
        *,
        resume: bool = False,
        force: bool = False,
        inputs: Iterable[str | os.PathLike] = (),
        flag: str = "--out",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}; one of {', '.join(KINDS)}")
        if resume and force:
            raise RunDirError(f"--resume continues the run in {path} and --force starts it over; pass only one")
        self.path, self.kind, self.resume, self.force = Path(path), kind, resume, force
        self.inputs, self.flag = list(inputs), flag
        self.created = False
        self._lock: RunLock | None = None

    @property
    def committed(self) -> bool:
        """Whether the directory holds a finished (checkpointed) run of this kind."""
        return (self.path / KINDS[self.kind][0]).is_file()

    def __enter__(self) -> "RunClaim":
        from .._io import check_output

        path = self.path
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{self.flag} {path} is a file, not a directory; pick a directory for the run")
        check_output(path, self.inputs, flag=self.flag, out_is_dir=True)
        self._check(discard=False)  # refuse before touching anything (not even a lock file)
        self.created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = RunLock(path).acquire()
            self._check(discard=True)  # again under the lock: another writer may have won the race
            clean_temp_files(path)
            if self.kind in ("lm", "imported", "classifier"):  # the kinds committed by checkpoint.commit_files
                _roll_forward(path, KINDS[self.kind][0])
            write_json(path / MARKER_FILE, {"format": MARKER_FORMAT, "version": 1, "kind": self.kind})
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def _check(self, discard: bool) -> None:
        path, kind = self.path, self.kind
        found = run_kind(path)
        if found == FOREIGN and not self.force:
            raise RunDirError(
                f"{self.flag} {path} holds files tokvec did not write ({_foreign_names(path)}); "
                f"pick a new or empty directory, or pass --force to write the run among them"
            )
        if found not in (None, FOREIGN, kind):
            raise RunDirError(
                f"{self.flag} {path} holds a {found} run; writing a {kind} run into it would break "
                f"it; pick another {self.flag}"
            )
        if self.resume:
            if not self.committed:
                raise RunDirError(
                    f"{path} holds no checkpoint to resume (no {KINDS[kind][0]}); start it without --resume"
                )
            return
        if self.committed and not self.force:
            raise RunDirError(
                f"{self.flag} {path} already holds a {kind} run; continue it with --resume, replace "
                f"it with --force, or pick another {self.flag}"
            )
        if (
            self.committed and discard
        ):  # --force: the old run goes first (its commit file first), so old and new never mix
            commit, owned = KINDS[kind]
            for name in (commit, *owned):
                try:
                    (path / name).unlink()
                except FileNotFoundError:
                    pass

    def _release(self, failed: bool) -> None:
        # a run that failed before committing anything leaves no directory behind (only one it created)
        if failed and self.created and self.path.is_dir() and not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self._release(failed=exc_type is not None)


def _roll_forward(path: Path, config_name: str) -> None:
    """Settle the ``.NAME.pending`` files a killed checkpoint left: one that ``config_name`` vouches for
    (the commit was written, the rename was not) is renamed into place; any other is removed.
    Each file is hashed in 1 MiB reads (:func:`tokvec._tensorread.file_sha256`): a 500 MB weights
    file is never held in memory."""
    from .._tensorread import file_sha256  # here: torch only when a run directory is settled

    files: dict = {}
    if (path / config_name).is_file():
        try:
            data = read_json(path / config_name)
        except FormatError:
            return  # a damaged config: leave everything as it is for the loader to report
        files = data.get("files") if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}

    for pending in path.glob(".*.pending"):
        name = pending.name[1 : -len(".pending")]
        expected = files.get(name)
        if not pending.is_file() or pending.is_symlink():
            continue
        if not isinstance(expected, dict):
            pending.unlink()  # written by a checkpoint that never committed
            continue
        final = path / name
        if final.is_file() and file_sha256(final) == expected.get("sha256"):
            pending.unlink()  # the committed file is already in place
        elif file_sha256(pending) == expected.get("sha256"):
            os.replace(pending, final)
        # else: neither matches; the loader reports the damage and nothing is thrown away


Config = TypeVar("Config")


def with_absolute_paths(config: Config, fields: Iterable[str]) -> Config:
    """``config`` (a dataclass) with its path ``fields`` (those set) and its tokenizer, when that names
    an existing file, made absolute: paths stored as typed break a resume from another directory."""
    from ..tokenizers.build import names_a_file

    changes: dict[str, Any] = {f: os.path.abspath(getattr(config, f)) for f in fields if getattr(config, f) is not None}
    if names_a_file(config.tokenizer) and Path(config.tokenizer).is_file():
        changes["tokenizer"] = os.path.abspath(config.tokenizer)
    return dataclasses.replace(config, **changes)


__all__ = ["RunClaim", "RunLock", "run_kind", "KINDS", "FOREIGN", "MARKER_FILE", "LOCK_FILE"]


def run_files(run_dir: str | os.PathLike, kind: str = "lm") -> list[Path]:
    """The files a run of ``kind`` keeps in ``run_dir`` (what a command reading the run may read),
    for :func:`tokvec._io.check_output`: an output must never be one of them."""
    return [Path(run_dir) / name for name in (*KINDS[kind][1], MARKER_FILE)]
