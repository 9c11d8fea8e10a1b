"""Time the test suite as the README's commands run it, pick the slow modules, write both.

Runs the whole suite once (``make test-all``'s command, with ``--durations=0``), adds up the
time of every test module, and lists the longest modules in ``tests/slow_modules.txt`` (what
``tests/conftest.py`` marks ``slow``) until the rest fits in ``--budget`` seconds; then times
the fast suite (``make test``'s command, ``-m "not slow"``) and writes both wall times, the
machine and its load between the ``test-timing`` markers of the README.

Run: ``python benchmarks/suite_timing.py --write`` (the whole suite, then the fast one).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import write_section  # noqa: E402

SLOW_LIST = ROOT / "tests" / "slow_modules.txt"
DURATION = re.compile(r"^([\d.]+)s (?:call|setup|teardown)\s+(tests/[^:]+\.py)::", re.M)
#: pytest's last line: "= 12 passed, 1 skipped in 3.0s =" (with -q: without the rules)
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", re.M)


def run_pytest(*args: str) -> tuple[float, str]:
    """Wall time and output of ``python -m pytest -q -p no:cacheprovider ARGS`` at the root."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"pytest {' '.join(args)} failed:\n{proc.stdout[-3000:]}")
    return wall, proc.stdout


def module_seconds(output: str) -> dict[str, float]:
    """Seconds per test module from pytest's ``--durations=0`` report."""
    seconds: dict[str, float] = defaultdict(float)
    for value, module in DURATION.findall(output):
        seconds[module] += float(value)
    return dict(seconds)


def pick_slow(seconds: dict[str, float], budget: float) -> list[str]:
    """The longest modules, longest first, until the others add up to at most ``budget``."""
    slow, rest = [], sum(seconds.values())
    for module, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
        if rest <= budget:
            break
        slow.append(module)
        rest -= value
    return sorted(slow)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=120.0, help="fast suite, test seconds")
    parser.add_argument("--write", action="store_true", help="update the list and the README")
    args = parser.parse_args(argv)
    full_wall, output = run_pytest("--durations=0", "--durations-min=0")
    seconds = module_seconds(output)
    slow = pick_slow(seconds, args.budget)
    if args.write:
        header = (
            "# Test modules marked slow (tests/conftest.py): the longest ones, until the rest\n"
            f"# takes at most {args.budget:.0f} s of test time. Written by\n"
            "# `python benchmarks/suite_timing.py --write`.\n"
        )
        SLOW_LIST.write_text(header + "".join(f"{m}\n" for m in slow))
    fast_wall, fast_output = run_pytest("-m", "not slow")
    full = SUMMARY.findall(output)[-1]
    fast = SUMMARY.findall(fast_output)[-1]
    body = (
        f"Measured by `python benchmarks/suite_timing.py --write` on {os.cpu_count()} CPU cores "
        f"(1-min load average {os.getloadavg()[0]:.1f} at the end): `make test` (the fast "
        f"suite, {len(slow)} slow modules left out) took **{fast_wall:.0f} s** ({fast}); "
        f"`make test-all` (every test, what CI runs) took **{full_wall:.0f} s** ({full}). "
        "Both times exclude the one-off set-up."
    )
    print(body)
    if args.write:
        write_section("test-timing", body, ROOT / "README.md")


if __name__ == "__main__":
    main()
