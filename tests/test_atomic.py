"""Atomic writes: a file is replaced whole or not at all, and stale temporary files are found."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dnwgraph import _atomic
from dnwgraph._atomic import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_files,
    folder_lock,
    is_tmp_name,
    remove_stale_tmp,
    untmp_name,
)
from dnwgraph._atomic import tmp_path as temporary_path


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoint.pt"
    atomic_write_bytes(path, b"good")

    def half(f, data: bytes) -> None:
        f.write(data[:2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_atomic, "_fill", half)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b"better")
    assert path.read_bytes() == b"good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_a_killed_write_leaves_only_a_temporary_that_is_cleaned(tmp_path: Path) -> None:
    path = tmp_path / "epoch_0001.pt"
    atomic_write_bytes(path, b"whole")
    kill_before_rename = (
        "import os, signal, sys\n"
        "from dnwgraph import _atomic\n"
        "_atomic._commit = lambda tmp, path: os.kill(os.getpid(), signal.SIGKILL)\n"
        "_atomic.atomic_write_bytes(sys.argv[1], b'new')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", kill_before_rename, str(path)], env=env)
    assert proc.returncode == -9
    (left,) = [p for p in tmp_path.iterdir() if p != path]
    assert path.read_bytes() == b"whole" and left.read_bytes() == b"new"
    assert is_tmp_name(left.name) and untmp_name(left.name) == path.name
    assert remove_stale_tmp(tmp_path) == [left]
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_0001.pt"]


def test_an_interrupted_write_removes_its_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "out.csv"
    atomic_write_bytes(path, b"old")

    def interrupt(f, data: bytes) -> None:
        f.write(data[:1])
        raise KeyboardInterrupt

    monkeypatch.setattr(_atomic, "_fill", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_atomic_path_keeps_the_extension_and_cleans_up_on_error(tmp_path: Path) -> None:
    path = tmp_path / "wiring.png"
    with atomic_path(path) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and is_tmp_name(tmp.name)
        tmp.write_bytes(b"png")
    assert path.read_bytes() == b"png"
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("draw failed")
    assert path.read_bytes() == b"png" and [p.name for p in tmp_path.iterdir()] == ["wiring.png"]


def test_remove_stale_tmp_touches_only_its_own_names(tmp_path: Path) -> None:
    keep = ["notes.tmp", "data.csv", ".hidden", ".config.yaml"]
    for name in keep:
        (tmp_path / name).write_text("x")
    (tmp_path / "wiring").mkdir()
    stale = [tmp_path / ".checkpoint.tmp.pt", tmp_path / "wiring" / ".epoch_0002.tmp.pt"]
    for p in stale:
        p.write_bytes(b"")
    assert remove_stale_tmp(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, "wiring"])


def test_several_files_are_all_written_before_the_first_rename(tmp_path: Path, monkeypatch) -> None:
    """A failed first rename leaves the old files and no temporary; a failed later one keeps
    the new content of the files not yet renamed in their temporary files."""
    a, b = tmp_path / "a.bin", tmp_path / "b.json"
    atomic_write_files([(a, b"old a"), (b, b"old b")])
    commit = _atomic._commit
    for failing in ("a.bin", "b.json"):

        def fail(tmp: Path, path: Path, failing: str = failing) -> None:
            assert temporary_path(b).read_bytes() == b"new b"  # whole before any rename
            if path.name == failing:
                raise OSError(1, "Operation not permitted")
            commit(tmp, path)

        monkeypatch.setattr(_atomic, "_commit", fail)
        with pytest.raises(OSError, match="not permitted"):
            atomic_write_files([(a, b"new a"), (b, b"new b")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.tmp.json", "a.bin", "b.json"]
    assert (a.read_bytes(), b.read_bytes()) == (b"new a", b"old b")
    assert temporary_path(b).read_bytes() == b"new b"


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_writer_waits_while_another_holds_the_folder(tmp_path: Path) -> None:
    """Two writers of several files share their temporary names; the second waits."""
    path, written = tmp_path / "a.bin", threading.Event()

    def write() -> None:
        atomic_write_files([(path, b"second")])
        written.set()

    with folder_lock(tmp_path):
        other = threading.Thread(target=write)
        other.start()
        assert not written.wait(0.5) and not path.exists()
    other.join(timeout=60)
    assert written.is_set() and path.read_bytes() == b"second"


WRITER = Path(__file__).with_name("_concurrent_writer.py")


@pytest.mark.parametrize("helper", ["bytes", "files", "path"])
def test_two_processes_writing_one_file_never_collide(tmp_path: Path, helper: str) -> None:
    """Two processes replace one file 150 times each: neither fails, the file is one writer's
    whole output, and no temporary file is left."""
    target = tmp_path / "same.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), helper, str(target), "150", tag],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    size = len(target.read_bytes())
    assert target.read_bytes() in (b"a" * size, b"b" * size) and size == 64 * 1024
    assert [p.name for p in tmp_path.iterdir()] == ["same.csv"]


def test_what_lies_at_a_fixed_temporary_name_is_replaced_never_written_through(
    tmp_path: Path,
) -> None:
    """Before: a symlink at `.b.tmp.json` had the write go to its target (a file outside the
    folder overwritten) and a FIFO blocked the write for ever."""
    outside = tmp_path / "notes.txt"
    outside.write_text("mine")
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / ".b.tmp.json").symlink_to(outside)
    os.mkfifo(folder / ".a.tmp.bin")
    (folder / ".c.tmp.txt").write_text("stale")
    atomic_write_files(
        [(folder / "a.bin", b"1"), (folder / "b.json", b"2"), (folder / "c.txt", b"3")]
    )
    assert outside.read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin", "b.json", "c.txt"]
    assert [(folder / n).read_bytes() for n in ("a.bin", "b.json", "c.txt")] == [b"1", b"2", b"3"]
    (folder / ".a.tmp.bin").mkdir()  # a folder is not removed: the write fails, nothing changes
    with pytest.raises(OSError):
        atomic_write_files([(folder / "a.bin", b"4")])
    assert (folder / "a.bin").read_bytes() == b"1"
