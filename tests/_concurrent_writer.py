"""A writer process for tests/test_atomic.py: write ``TARGET`` ``N`` times with one helper.

Usage: ``python _concurrent_writer.py HELPER TARGET N TAG``; every write holds ``TAG`` repeated,
so the final file tells which writer wrote it and whether it is whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dnwgraph._atomic import atomic_path, atomic_write_bytes, atomic_write_files

SIZE = 64 * 1024


def content(tag: str) -> bytes:
    return (tag * SIZE)[:SIZE].encode()


def write(helper: str, target: Path, tag: str) -> None:
    if helper == "bytes":
        atomic_write_bytes(target, content(tag))
    elif helper == "files":
        atomic_write_files([(target, content(tag))])
    else:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:  # a writer that opens the name itself, as savefig does
                for i in range(0, SIZE, 4096):
                    f.write(content(tag)[i : i + 4096])


if __name__ == "__main__":
    helper, target, n, tag = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    for _ in range(n):
        write(helper, target, tag)
