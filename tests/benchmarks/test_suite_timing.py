"""benchmarks/suite_timing.py reads pytest's summary line with and without -q's rules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("suite_timing")


def test_the_summary_line_is_found_with_and_without_rules(script):
    summary = script.SUMMARY
    quiet = "....\n950 passed, 47 skipped, 20 warnings in 135.65s (0:02:15)\n"
    ruled = "==== 3 passed, 1 deselected in 1.20s ====\n"
    assert summary.findall(quiet) == ["950 passed, 47 skipped, 20 warnings"]
    assert summary.findall(ruled) == ["3 passed, 1 deselected"]


def test_the_slow_modules_are_the_longest_until_the_rest_fits(script):
    pick = script.pick_slow
    assert pick({"a.py": 50.0, "b.py": 30.0, "c.py": 10.0}, budget=45.0) == ["a.py"]
    assert pick({"a.py": 50.0, "b.py": 30.0, "c.py": 10.0}, budget=5.0) == ["a.py", "b.py", "c.py"]
