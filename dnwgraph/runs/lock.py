"""The lock of a run folder: one writer at a time.

A process that writes a run (``dnwgraph train``, a new run, ``--overwrite`` or ``--resume``)
holds ``.dnwgraph.lock`` in the run folder: an operating-system lock (``flock``) on that file,
which records the holder's PID, host and start time.  A second writer is refused in one line
naming the holder.  The operating system drops the lock when its process ends, however it
ends, so a lock left behind by a killed process is stale at once: the next writer takes it
over (no PID guessing, no manual clean-up).  The holder removes the file when it is done.

Examples:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> lock = RunLock()
    >>> lock.acquire(folder)
    >>> RunLock().acquire(folder)
    Traceback (most recent call last):
    ...
    dnwgraph.runs.lock.RunLockedError: the run folder ... is being written by process ...
    >>> lock.release()
    >>> holder(folder) is None
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from dnwgraph.errors import DNWGraphError
from dnwgraph.typing import PathLikeStr

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "RunLock", "RunLockedError", "holder"]

LOCK = ".dnwgraph.lock"


class RunLockedError(DNWGraphError):
    """Another process is writing the run folder."""


def _try_lock(fd: int) -> bool:
    """Take the lock on ``fd`` without waiting; ``False`` if another open file holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError on POSIX, PermissionError on Windows
        return False
    return True


def _describe(fd: int) -> str:
    """Who holds the lock, from the file's record."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode("utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record["since"])))
        return f"process {int(record['pid'])} on host {record['host']!s} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting"


def _open(path: Path, create: bool) -> int:
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | (os.O_CREAT if create else 0)
    return os.open(path, flags, 0o644)


def holder(folder: PathLikeStr) -> str | None:
    """Who is writing ``folder`` now (``"process PID on host H since T"``), or ``None`` when
    no live process holds its lock (no lock file, or a stale one)."""
    path = Path(folder) / LOCK
    try:
        fd = _open(path, create=False)
    except OSError:
        return None
    try:
        if _try_lock(fd):
            return None  # closing the file drops the lock again
        return _describe(fd)
    finally:
        os.close(fd)


class RunLock:
    """The lock of one run folder, held by this process until :meth:`release`.

    :meth:`acquire` takes it (or raises :class:`RunLockedError`); when the folder is renamed
    (a new run is assembled under a temporary name), :meth:`moved` follows it.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self.path: Path | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, folder: PathLikeStr) -> None:
        """Take the lock of ``folder`` (a no-op if this object holds it already).

        Raises:
            RunLockedError: another live process holds it (the message names it).
            OSError: the folder is missing or not writable.
        """
        folder = Path(folder)
        path = folder / LOCK
        if self._fd is not None and self.path == path:
            return
        while True:
            fd = _open(path, create=True)
            if not _try_lock(fd):
                who = _describe(fd)
                os.close(fd)
                raise RunLockedError(
                    f"the run folder {str(folder)!r} is being written by {who}; wait until it "
                    f"ends or stop it (a second writer would mix two runs); its lock is {LOCK}"
                )
            # the holder before us may have removed the file between our open and our lock
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode("utf-8"))
        self._fd, self.path = fd, path

    def moved(self, folder: PathLikeStr) -> None:
        """The locked folder was renamed to ``folder`` (the lock itself is unchanged)."""
        self.path = Path(folder) / LOCK

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op if it is not held)."""
        fd, path = self._fd, self.path
        if fd is None or path is None:
            return
        self._fd = None
        try:
            if fcntl is not None:  # POSIX removes an open file; Windows needs it closed first
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            os.close(fd)
        if fcntl is None:  # pragma: no cover - Windows
            with contextlib.suppress(OSError):
                path.unlink()
