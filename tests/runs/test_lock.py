"""The lock of a run folder: one writer at a time, and a killed writer's lock is stale."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dnwgraph.runs.lock import LOCK, RunLock, RunLockedError, holder


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = RunLock()
    first.acquire(tmp_path)
    assert holder(tmp_path).startswith(f"process {os.getpid()} on host ")
    with pytest.raises(RunLockedError, match=rf"is being written by process {os.getpid()} on"):
        RunLock().acquire(tmp_path)
    first.acquire(tmp_path)  # holding it already: a no-op
    first.release()
    assert not (tmp_path / LOCK).exists() and holder(tmp_path) is None
    second = RunLock()
    second.acquire(tmp_path)
    second.release()
    second.release()  # twice is harmless


def test_a_lock_file_nobody_holds_is_taken_over(tmp_path: Path) -> None:
    for content in ("", "garbage", '{"pid": 1, "host": "elsewhere", "since": 0}'):
        (tmp_path / LOCK).write_text(content)
        assert holder(tmp_path) is None
        lock = RunLock()
        lock.acquire(tmp_path)
        lock.release()


def test_the_lock_follows_a_renamed_folder(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    lock = RunLock()
    lock.acquire(tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")
    lock.moved(tmp_path / "b")
    with pytest.raises(RunLockedError):
        RunLock().acquire(tmp_path / "b")
    lock.release()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == []


def test_a_link_in_place_of_the_lock_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("mine")
    (tmp_path / LOCK).symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        RunLock().acquire(tmp_path)
    assert (tmp_path / "target").read_text() == "mine"


HOLD = """
import sys, time
from dnwgraph.runs.lock import RunLock
RunLock().acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def test_a_lock_held_by_a_killed_process_recovers_on_its_own(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"process {proc.pid} on host"):
            RunLock().acquire(tmp_path)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / LOCK).exists()  # left behind by the kill, and stale
    deadline = time.monotonic() + 10
    while holder(tmp_path) is not None:  # the kernel drops the lock as the process ends
        assert time.monotonic() < deadline
        time.sleep(0.01)
    lock = RunLock()
    lock.acquire(tmp_path)
    lock.release()
