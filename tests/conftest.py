"""Marks every test of the modules listed in ``tests/slow_modules.txt`` as ``slow``: ``make
test`` (``-m "not slow"``) leaves them out, ``make test-all`` and CI run them.  The list is
measured, not guessed: ``python benchmarks/suite_timing.py --write`` runs the whole suite once
and writes the modules whose tests take longest."""

from __future__ import annotations

from pathlib import Path

import pytest

SLOW_LIST = Path(__file__).with_name("slow_modules.txt")


def slow_modules() -> set[str]:
    """Module paths relative to the repository (``tests/models/test_mobilenet.py``)."""
    if not SLOW_LIST.is_file():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in SLOW_LIST.read_text().splitlines())
    return {line for line in lines if line}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow, root = slow_modules(), Path(config.rootpath)
    for item in items:
        if item.path.relative_to(root).as_posix() in slow:
            item.add_marker(pytest.mark.slow)
