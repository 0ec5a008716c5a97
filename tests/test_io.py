"""tokvec._io: atomic writes never rename over what is not a regular file; outputs never overwrite inputs.

Part of the fault-injection suite (issue 11, items 2 and 4): each table row is one case; add rows to
extend it. Special files are made in tmp_path (a FIFO, symlinks, and, as root, a private copy of the
/dev/null node), so a failing test can never replace the system's /dev/null.
"""

import itertools
import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from tokvec import _io
from tokvec._io import Writeback, atomic_open, check_output, clean_temp_files, start_writeback, write_json, write_target
from tokvec.errors import OutputPathError, TokvecError


# -- how a target is written --------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, how",
    [
        ("/dev/stdout", "through"),
        ("/dev/stderr", "through"),
        ("/dev/fd/1", "through"),
        ("/proc/self/fd/2", "through"),
        ("/dev/null", "through"),  # classified only: nothing is written here
    ],
)
def test_system_special_paths_are_written_through(path, how):
    assert write_target(path)[0] == how


def _fifo(tmp: Path) -> Path:
    path = tmp / "fifo"
    os.mkfifo(path)
    return path


def _symlink_to_file(tmp: Path) -> Path:
    (tmp / "target.txt").write_text("old", encoding="utf-8")
    (tmp / "link").symlink_to(tmp / "target.txt")
    return tmp / "link"


def _dangling_symlink(tmp: Path) -> Path:
    (tmp / "link").symlink_to(tmp / "new.txt")
    return tmp / "link"


def _char_device(tmp: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    path = tmp / "null"
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null node
    return path


def _symlink_to_char_device(tmp: Path) -> Path:
    (tmp / "link").symlink_to(_char_device(tmp))
    return tmp / "link"


@pytest.mark.parametrize(
    "make, kind_after, how",
    [
        (_fifo, stat.S_ISFIFO, "through"),
        (_char_device, stat.S_ISCHR, "through"),
        (_symlink_to_char_device, stat.S_ISCHR, "through"),
        (_symlink_to_file, stat.S_ISREG, "replace"),
        (_dangling_symlink, stat.S_ISREG, "replace"),
    ],
    ids=["fifo", "char-device", "symlink-to-device", "symlink-to-file", "dangling-symlink"],
)
def test_special_files_are_never_replaced(tmp_path, make, kind_after, how):
    path = make(tmp_path)
    was_link = path.is_symlink()
    assert write_target(path)[0] == how
    received = []
    reader = None
    if path.exists() and stat.S_ISFIFO(os.stat(path).st_mode):  # a FIFO's writer blocks until someone reads
        reader = threading.Thread(target=lambda: received.append(Path(path).read_bytes()))
        reader.start()
    with atomic_open(path, "wb") as f:
        f.write(b"payload")
    if reader is not None:
        reader.join(10)
        assert received == [b"payload"]
    assert path.is_symlink() == was_link  # a link stays a link
    assert kind_after(os.stat(path).st_mode)  # a FIFO stays a FIFO, a device a device
    if how == "replace":
        assert Path(os.path.realpath(path)).read_bytes() == b"payload"  # through the link, into its target
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_directory_is_refused(tmp_path, error_says):
    with error_says(OutputPathError, str(tmp_path), "is a directory", "file name"):
        write_json(tmp_path, {"a": 1})


def test_an_inherited_descriptor_is_written_at_its_offset(tmp_path):
    # /dev/fd/N of a file opened for appending: the bytes go after what is there, nothing is truncated
    log = tmp_path / "log.txt"
    log.write_text("kept\n", encoding="utf-8")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        with atomic_open(f"/dev/fd/{fd}", "w", encoding="utf-8") as f:
            f.write("added\n")
    finally:
        os.close(fd)
    assert log.read_text(encoding="utf-8") == "kept\nadded\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write("new")
            raise RuntimeError("boom")
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_clean_temp_files_removes_only_atomic_leftovers(tmp_path):
    for name in (
        ".model.safetensors.pending.ab12cd.tmp",
        ".config.json.x1.tmp",
        "notes.tmp",
        "model.safetensors",
        ".model.safetensors.pending",
    ):
        (tmp_path / name).write_bytes(b"x" * 10)
    removed = clean_temp_files(tmp_path)
    assert sorted(p.name for p in removed) == [".config.json.x1.tmp", ".model.safetensors.pending.ab12cd.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".model.safetensors.pending",
        "model.safetensors",
        "notes.tmp",
    ]


# -- output == input ----------------------------------------------------------------------------
def _same(tmp):
    return tmp / "corpus.txt", [tmp / "corpus.txt"], "is the input file"


def _relative_spelling(tmp):
    return tmp / "sub" / ".." / "corpus.txt", [tmp / "corpus.txt"], "is the input file"


def _hard_link(tmp):
    os.link(tmp / "corpus.txt", tmp / "hard.txt")
    return tmp / "hard.txt", [tmp / "corpus.txt"], "is the input file"


def _symlink_out(tmp):
    (tmp / "link.txt").symlink_to(tmp / "corpus.txt")
    return tmp / "link.txt", [tmp / "corpus.txt"], "is the input file"


def _symlink_in(tmp):
    (tmp / "link.txt").symlink_to(tmp / "corpus.txt")
    return tmp / "corpus.txt", [tmp / "link.txt"], "is the input file"


def _inside_input_dir(tmp):
    return tmp / "data" / "ids.bin", [tmp / "data"], "lies inside the input directory"


def _inside_linked_input_dir(tmp):
    (tmp / "alias").symlink_to(tmp / "data")
    return tmp / "alias" / "deep" / "ids.bin", [tmp / "data"], "lies inside the input directory"


def _dir_holding_input(tmp):
    return tmp / "data", [tmp / "data" / "a.txt"], "holds the input"


def _unrelated(tmp):
    return tmp / "out.json", [tmp / "corpus.txt", tmp / "data"], None


def _sibling_prefix(tmp):  # data2 is not inside data
    return tmp / "data2" / "x.bin", [tmp / "data"], None


@pytest.mark.parametrize(
    "case",
    [
        _same,
        _relative_spelling,
        _hard_link,
        _symlink_out,
        _symlink_in,
        _inside_input_dir,
        _inside_linked_input_dir,
        _dir_holding_input,
        _unrelated,
        _sibling_prefix,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_check_output(tmp_path, case):
    (tmp_path / "corpus.txt").write_text("text", encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("text", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    out, inputs, fragment = case(tmp_path)
    if fragment is None:
        check_output(out, inputs)
        return
    with pytest.raises(OutputPathError, match=fragment) as e:
        check_output(out, inputs)
    assert isinstance(e.value, (TokvecError, ValueError))
    assert str(out) in str(e.value)  # names the path the user gave


# -- Writeback: the disk starts while a large file is still being written ------------------------
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")


@pytest.fixture
def writeback_calls(monkeypatch):
    """Every start_writeback call as (offset, length, what the real call returned)."""
    calls, real = [], _io.start_writeback

    def recording(fd, offset, length):
        calls.append((offset, length, real(fd, offset, length)))
        return calls[-1][2]

    monkeypatch.setattr(_io, "start_writeback", recording)
    return calls


@linux_only
def test_writeback_asks_for_each_interval_once_in_order_and_leaves_the_bytes_alone(tmp_path, writeback_calls):
    path = tmp_path / "big.bin"
    data = os.urandom(5 << 20)
    with atomic_open(path, "wb") as f:
        f.write(b"head")  # a writer that started before the Writeback took over: offsets count from the file's start
        wb = Writeback(f, every=2 << 20)
        for a in range(0, len(data), 1 << 20):
            f.write(data[a : a + (1 << 20)])
            wb.wrote(len(data[a : a + (1 << 20)]))
    assert writeback_calls == [
        (4, 2 << 20, True),
        (4 + (2 << 20), 2 << 20, True),
    ]  # 5 MiB: two whole intervals asked (and the kernel took them), the tail left to fsync
    assert path.read_bytes() == b"head" + data


def test_writeback_on_a_pipe_or_where_the_call_is_missing_is_a_no_op(tmp_path, monkeypatch, writeback_calls):
    r, w = os.pipe()
    with os.fdopen(w, "wb") as f, os.fdopen(r, "rb") as reader:
        wb = Writeback(f, every=1)
        f.write(b"xy")
        wb.wrote(2)  # a pipe has no position: nothing asked, nothing raised
        f.flush()
        assert reader.read(2) == b"xy"
    assert writeback_calls == []
    monkeypatch.setattr(_io, "_sync_file_range", lambda: None)  # macOS, Windows
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert start_writeback(fd, 0, 1) is False
    finally:
        os.close(fd)


def test_a_streamed_tensor_file_starts_its_writeback_as_it_goes(tmp_path, monkeypatch):
    import torch

    from tokvec.runs.tensorfile import save_tensors

    asked = []
    monkeypatch.setattr(_io, "WRITEBACK_BYTES", 1 << 20)
    monkeypatch.setattr(_io, "start_writeback", lambda fd, offset, length: asked.append((offset, length)) or True)
    t = torch.arange(3 << 18, dtype=torch.float32)  # 3 MiB
    info = save_tensors(tmp_path / "t.safetensors", {"t": t})
    # contiguous from the first byte (the header included), at least one interval apart, the tail
    # (under an interval) left to the fsync
    assert [offset for offset, _ in asked] == [0, *itertools.accumulate(length for _, length in asked[:-1])]
    assert len(asked) == 3 and all(length >= 1 << 20 for _, length in asked)
    assert info["bytes"] - (1 << 20) < sum(length for _, length in asked) <= info["bytes"]
