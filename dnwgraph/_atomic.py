"""Atomic file writes: every file dnwgraph writes appears whole or not at all.

A file is written to a temporary file in the same folder, flushed and ``fsync``-ed, then
renamed over the target with :func:`os.replace` (atomic on POSIX and Windows), and the folder is
``fsync``-ed so that the rename survives a power cut.  A process killed at any moment leaves the
previous version of the file or the new one, never a part of it; what it may leave is a stale
temporary file, which :func:`remove_stale_tmp` clears (a resumed run calls it).

A single file (:func:`atomic_write_bytes`, :func:`atomic_path`) goes through a temporary file of
its own, ``.STEM.XXXXXXXX.tmp.EXT`` for ``STEM.EXT`` (eight random hex digits, created with
``O_EXCL``; writers that choose a format by the extension still see it), so any number of
processes may replace one file at once: the last rename wins and each writer cleans up after
itself, whatever stops it.  Several files written together (:func:`atomic_write_files`) go
through fixed names, ``.STEM.tmp.EXT`` (:func:`tmp_path`), so that a reader can find the rest of
a write stopped between two renames; their writers take turns on a lock of the folder
(:func:`folder_lock`).

Private: used by every module that writes (the run directory, exports, figures, reports).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from dnwgraph.typing import PathLikeStr

__all__ = [
    "atomic_write_bytes",
    "atomic_write_files",
    "folder_lock",
    "atomic_path",
    "tmp_path",
    "new_tmp_path",
    "is_tmp_name",
    "untmp_name",
    "remove_stale_tmp",
    "TMP_SUFFIX",
]

TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\.(?P<stem>.+?)(?:\.[0-9a-f]{8})?\.tmp(?P<ext>\.[^.]+)?$")


def tmp_path(path: PathLikeStr) -> Path:
    """The temporary file ``path`` is written through, in the same folder.

    Examples:
        >>> tmp_path("run/checkpoint.pt").as_posix(), tmp_path("run/wiring").as_posix()
        ('run/.checkpoint.tmp.pt', 'run/.wiring.tmp')
    """
    path = Path(path)
    return path.with_name(f".{path.stem}{TMP_SUFFIX}{path.suffix}")


def new_tmp_path(path: PathLikeStr) -> Path:
    """Create an empty temporary file for ``path`` in its folder, named for this writer alone
    (``.STEM.XXXXXXXX.tmp.EXT``, created with ``O_EXCL`` and the mode a new file gets).

    Raises:
        OSError: the folder is missing or not writable.

    Examples:
        >>> import tempfile
        >>> tmp = new_tmp_path(Path(tempfile.mkdtemp()) / "w.csv")
        >>> is_tmp_name(tmp.name), untmp_name(tmp.name), tmp.suffix, tmp.read_bytes()
        (True, 'w.csv', '.csv', b'')
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{TMP_SUFFIX}{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # another writer drew the same name: draw again
            continue
        return tmp


def is_tmp_name(name: str) -> bool:
    """Whether ``name`` is one :func:`tmp_path` or :func:`new_tmp_path` makes (``.STEM.tmp``,
    ``.STEM.tmp.EXT`` or ``.STEM.XXXXXXXX.tmp.EXT``).

    Examples:
        >>> is_tmp_name(".checkpoint.tmp.pt"), is_tmp_name("checkpoint.pt"), is_tmp_name(".x.tmp")
        (True, False, True)
    """
    return bool(_TMP_NAME.match(name))


def untmp_name(name: str) -> str | None:
    """The name of the file a temporary file ``name`` stands for, or ``None`` for another name.

    Examples:
        >>> untmp_name(".checkpoint.tmp.pt"), untmp_name(".w.0a1b2c3d.tmp.csv"), untmp_name("w.csv")
        ('checkpoint.pt', 'w.csv', None)
    """
    match = _TMP_NAME.match(name)
    return None if match is None else match["stem"] + (match["ext"] or "")


def _fill(f: object, data: bytes) -> None:
    """Write ``data`` into the open temporary file (a seam for the fault-injection tests)."""
    f.write(data)  # type: ignore[attr-defined]


def _commit(tmp: Path, path: Path) -> None:
    """Rename the finished temporary file over ``path`` (a seam for the fault-injection tests)."""
    os.replace(tmp, path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # a folder cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLikeStr, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file of this writer's own
    (:func:`new_tmp_path`), ``fsync``, then rename.

    Raises:
        OSError: if the folder does not exist or is not writable (the temporary file is
            removed, whatever stopped the write).

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write_bytes(path, b"hello")
        >>> path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
        (b'hello', ['a.txt'])
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _fill(f, data)


def atomic_write_files(files: Sequence[tuple[PathLikeStr, bytes]]) -> None:
    """Write several files: every temporary file is written and ``fsync``-ed first, then they
    are renamed over their targets in the given order.

    A kill before the first rename leaves every old file (and stale temporary files); a kill
    between two renames leaves the files renamed so far new, the others old, each with its
    new content already whole in its temporary file (:func:`tmp_path`), so a reader can tell
    what was being written and nothing is lost.

    Raises:
        OSError: if a folder does not exist or is not writable. A failure before the first
            rename removes every temporary file; after it, the temporary files not yet renamed
            are kept (they hold the rest of the new version).

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> atomic_write_files([(d / "a.bin", b"1"), (d / "b.json", b"2")])
        >>> sorted(p.name for p in d.iterdir())
        ['a.bin', 'b.json']
    """
    targets = [(Path(path), tmp_path(path), data) for path, data in files]
    folders = list(dict.fromkeys(path.parent for path, _, _ in targets))
    with contextlib.ExitStack() as stack:
        for folder in folders:  # another writer of these files waits (the same temporary names)
            stack.enter_context(folder_lock(folder))
        renamed = 0
        try:
            for _, tmp, data in targets:
                with _open_new(tmp) as f:
                    _fill(f, data)
                    f.flush()
                    os.fsync(f.fileno())
            for path, tmp, _ in targets:
                _commit(tmp, path)
                renamed += 1
        except Exception:
            if renamed == 0:
                for _, tmp, _ in targets:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
            raise
        for folder in folders:
            _fsync_dir(folder)


def _open_new(tmp: Path) -> BinaryIO:
    """Open the fixed-name temporary file ``tmp`` as a new regular file: whatever a killed
    write (or anyone) left under that name is removed first, never written through (a symlink
    would write outside the folder, a FIFO would block for ever).

    Raises:
        OSError: ``tmp`` is a folder, or cannot be created.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a link itself, not its target; a folder raises
    excl = os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return open(tmp, "wb", opener=lambda path, flags: os.open(path, flags | excl, 0o666))


@contextlib.contextmanager
def folder_lock(folder: PathLikeStr, *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (POSIX ``flock`` on the folder, no file
    added): two processes or threads writing through the same temporary files take turns.
    With ``shared``, a reader's lock: readers of files written together hold it at once, and
    a writer waits for them (as they wait for it), so they never read the files of two
    writes. The operating system drops it when its holder ends, however it ends. Where a
    folder cannot be locked (Windows, some network file systems) the files go unlocked.

    Examples:
        >>> import tempfile
        >>> with folder_lock(tempfile.mkdtemp()):
        ...     pass
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a missing folder: the write itself names the problem
        yield
        return
    try:
        with contextlib.suppress(OSError):  # unsupported here: the writes go unlocked
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


@contextlib.contextmanager
def atomic_path(path: PathLikeStr) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through (for writers that take a file name,
    such as ``Figure.savefig`` or ``networkx.write_graphml``); on success it is ``fsync``-ed and
    renamed over ``path``, on any exception (``KeyboardInterrupt`` too) it is removed and
    ``path`` is left untouched. The temporary file is this writer's own (:func:`new_tmp_path`),
    created empty before the yield.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "b.txt"
        >>> with atomic_path(path) as tmp:
        ...     _ = tmp.write_text("hi")
        >>> path.read_text()
        'hi'
    """
    path = Path(path)
    tmp = new_tmp_path(path)
    committed = False
    try:
        yield tmp
        _fsync_file(tmp)
        _commit(tmp, path)
        committed = True
    finally:
        if not committed:
            with contextlib.suppress(OSError):
                tmp.unlink()
    _fsync_dir(path.parent)


def remove_stale_tmp(folder: PathLikeStr, recursive: bool = True) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (and its sub-folders).

    Only plain files named as :func:`tmp_path` and :func:`new_tmp_path` name them are touched;
    call it only while no writer of ``folder`` runs (a resumed run holds the run's lock).

    Returns:
        list of Path: the files removed.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / ".checkpoint.tmp.pt").write_bytes(b"half")
        >>> [p.name for p in remove_stale_tmp(d)], sorted(d.iterdir())
        (['.checkpoint.tmp.pt'], [])
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(".*") if recursive else folder.glob(".*")
    removed = []
    for p in sorted(found):
        if is_tmp_name(p.name) and p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(p)
    return removed
