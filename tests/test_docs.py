"""The Python blocks of the concept docs run, and print what the docs say they print."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def run_blocks(path: Path) -> str:
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            for block in python_blocks(path):
                exec(compile(block, str(path), "exec"), {"__name__": "__docs__"})
    finally:
        os.chdir(cwd)
    return out.getvalue()


@pytest.mark.parametrize("page", ["concepts.md"])
def test_doc_blocks_run_and_print_their_comments(page):
    path = ROOT / "docs" / page
    text = run_blocks(path)
    # every "print(...)  # value" comment that starts with a literal is what the line printed
    expected = re.findall(r"print\(.*\)\s+# (\[[^\]]*\])", path.read_text())
    assert expected, "the page should document some printed values"
    for value in expected:
        assert value in text, f"{page}: expected {value} in the output\n{text}"


def test_readme_python_blocks_run():
    run_blocks(ROOT / "README.md")


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_stability_page_blocks_run():
    # the monitor example trains a few steps; the reference block builds a model
    run_blocks(ROOT / "docs" / "stability.md")


def test_guarantees_cite_only_files_and_tests_that_exist():
    text = (ROOT / "docs" / "guarantees.md").read_text()
    cited, current = 0, None
    for item in re.findall(r"`([^`]+)`", text):
        path, _, name = item.partition("::")
        if path.startswith(("tests/", "dnwgraph/", "docs/")):
            assert (ROOT / path).exists(), item
            current = ROOT / path
        elif path or not name:
            continue
        if name:
            assert current is not None and current.suffix == ".py", item
            assert re.search(rf"^def {re.escape(name)}\(", current.read_text(), re.M), item
            cited += 1
    assert cited >= 40
    readme = (ROOT / "README.md").read_text()
    assert "[docs/guarantees.md](docs/guarantees.md)" in readme


def test_architecture_page_names_only_modules_that_exist_and_is_linked():
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = re.findall(r"`(dnwgraph/[\w/]+\.py)`", text)
    assert len(paths) >= 15
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert missing == []
    for layer in ("graph", "select", "nn", "models", "runs", "train", "analysis"):
        assert f"<b>{layer}/</b>" in text and (ROOT / "dnwgraph" / layer).is_dir()
    assert "[docs/architecture.md](docs/architecture.md)" in (ROOT / "README.md").read_text()
