"""The files of a pretrained-model folder, read and checked before anything is built.

Every read names the file and the real cause in one line: a missing file, a folder, a FIFO or
a device where a file belongs, a symlink loop, an unreadable or oversized file, bytes that are
not UTF-8 JSON (a key given twice, ``NaN``, nesting deeper than a config needs), a checksum
that does not match.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from dnwgraph._json import loads as strict_json
from dnwgraph.errors import DNWGraphError

#: A dnwgraph config is a few kB (tensors live in the safetensors file).
MAX_CONFIG_BYTES = 1 << 20


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (following symlinks), or ``None``.

    Examples:
        >>> file_problem(Path("/"))
        'is a folder'
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "is missing" if not os.path.lexists(path) else "is a broken symlink"
    except OSError as err:  # a symlink loop, a name too long, a path through a file
        return f"cannot be opened ({err.strerror})"
    if not stat.S_ISREG(mode):
        return f"is {_kind(mode)}"
    return None


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``; never opens a FIFO or a device.

    Raises:
        DNWGraphError: not a regular file, unreadable, or over ``limit`` bytes.
    """
    problem = file_problem(path)
    if problem:
        raise DNWGraphError(f"{str(path)!r} {problem}: a pretrained folder holds regular files")
    try:
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise DNWGraphError(
                f"{str(path)!r} is {size} bytes; a dnwgraph {path.name} is under {limit} bytes"
            )
        return path.read_bytes()
    except OSError as err:
        raise DNWGraphError(f"{str(path)!r} cannot be read ({err.strerror})") from None


def read_json(path: Path) -> Any:
    """Strict JSON of a small UTF-8 file: no duplicate keys, no ``NaN``/``Infinity``, at most
    64 levels of nesting.

    Raises:
        DNWGraphError: any of these, or a file :func:`read_bytes` refuses.
    """
    data = read_bytes(path, MAX_CONFIG_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DNWGraphError(
            f"{str(path)!r} is not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start})"
        ) from None
    try:
        return strict_json(text)
    except DNWGraphError as err:
        raise DNWGraphError(f"{str(path)!r}: {err}") from None


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Examples:
        >>> sha256(b"")[:16]
        'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def config_digest(config: dict[str, Any], field: str) -> str:
    """SHA-256 of ``config`` without ``field``, as canonical JSON (sorted keys, no spaces):
    the same value however the file is indented.

    Examples:
        >>> config_digest({"a": 1, "sum": "x"}, "sum") == config_digest({"a": 1}, "sum")
        True
    """
    rest = {k: v for k, v in config.items() if k != field}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return sha256(text.encode())
