"""Shared helpers for the benchmark scripts: medians of wall time, peak memory, tables.

Every script prints a Markdown table and, with ``--write``, replaces its own section of
``docs/benchmarks.md`` (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``) so that the
page always holds the latest measured numbers together with the command that produced them.
"""

from __future__ import annotations

import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def median_ms(fn: Callable[[], object], repeat: int = 11, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA is synchronised)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def timed_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Wall time of one ``fn()`` in milliseconds, synchronising ``device`` before and after
    (for interleaved measurements, where the caller takes the medians)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1e3


def reset_peak_memory() -> float:
    """Return freed memory to the OS, reset this process's peak RSS; the current RSS in MB.

    Linux only (``/proc``): writing 5 to ``clear_refs`` resets ``VmHWM`` to the current RSS,
    so :func:`peak_memory_mb` afterwards measures the peak of what runs in between.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mb("VmRSS")


def peak_memory_mb() -> float:
    """Peak RSS in MB since the last :func:`reset_peak_memory` (Linux)."""
    return _status_mb("VmHWM")


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def device_name(device: torch.device | str = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {threads} thread{'' if threads == 1 else 's'}"


def for_device(section: str, device: torch.device | str) -> str:
    """The name of ``section`` for figures measured on ``device``: itself on a CPU, with
    ``-cuda`` on a GPU (the two tables stand side by side)."""
    return section if torch.device(device).type == "cpu" else f"{section}-cuda"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""

    def fmt(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, path: Path | str = DOC) -> None:
    """Replace (or append) the section ``name`` of a Markdown file (``docs/benchmarks.md``).

    The section is the text between ``<!-- name:start -->`` and ``<!-- name:end -->``, so
    several scripts can keep their own part of one page current.
    """
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"# {path.stem.capitalize()}\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    path.write_text(text)
