"""The Python blocks of the concept docs run, and print what the docs say they print."""

from __future__ import annotations

import contextlib
import io
import logging
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


def run_page(path: Path, cwd: Path) -> list[str]:
    """Run the page's Python blocks in order, in one namespace, from ``cwd`` (which sees the
    repository's ``examples/``); return the printed lines.  The root logger is restored."""
    (cwd / "examples").symlink_to(ROOT / "examples")
    out, root = io.StringIO(), logging.getLogger()
    handlers, level, here = list(root.handlers), root.level, os.getcwd()
    namespace: dict = {"__name__": "__docs__"}
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            for block in python_blocks(path):
                exec(compile(block, str(path), "exec"), namespace)
    finally:
        os.chdir(here)
        root.handlers[:], root.level = handlers, level
    return out.getvalue().splitlines()


@pytest.mark.parametrize(
    "page", ["README.md", "docs/wiring.md", "docs/training.md", "docs/architectures.md"]
)
def test_page_blocks_print_what_their_comments_say(tmp_path: Path, page: str) -> None:
    """Every ``print(...)  # VALUE`` line of the page prints VALUE, and nothing else prints."""
    path = ROOT / page
    printed = run_page(path, tmp_path)
    code = "\n".join(python_blocks(path))
    expected = re.findall(r"^print\(.*\)\s+# (.+)$", code, re.M)
    assert expected, f"{page} should show what its code prints"
    assert [line.rstrip() for line in printed] == expected


def test_every_python_block_of_the_docs_runs_in_a_test() -> None:
    """A page with Python blocks is run by one of the doc tests (a ``text`` fence shows a
    signature or an output that is not code)."""
    tested = {"README.md", "wiring.md", "training.md", "architectures.md", "concepts.md"}
    tested |= {"interop.md"}
    tested |= {"stability.md", "analysis.md", "models.md"}  # tests/analysis, tests/models
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    with_code = {p.name for p in pages if python_blocks(p)}
    assert with_code <= tested, sorted(with_code - tested)
    assert "docs_analysis" in (ROOT / "tests/analysis/test_docs_analysis.py").read_text()
    assert "models.md" in (ROOT / "tests/models/test_docs_models.py").read_text()


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_interop_page_blocks_run():
    # the plan cache, a compiled model (compiled lazily: not called), a quiet trace, a
    # sparsified CNN without graph breaks, an exported compact model, ONNX (with the onnx
    # package only) and an explanation
    lines = run_blocks(ROOT / "docs" / "interop.md").splitlines()
    assert "torch.Size([5])" in lines
    warned = [line for line in lines if line.startswith("[")][0]
    assert "TracerWarning" not in warned and warned.count("Warning") <= 3
    assert lines[1:4] == ["True", "0", "True"]  # trace == eager, no graph break, export == eager


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


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_docs_refer_only_to_files_in_the_repository() -> None:
    """Relative links, and paths in backticks that start at a folder of the repository (or of
    docs/), name files that exist; a bare ``*.yaml`` name is a file of examples/configs/.
    Files of a run folder (``metrics.csv``) and of other repositories (linked) are not ours."""
    top = ("dnwgraph/", "tests/", "docs/", "examples/", "benchmarks/", ".ci/", "img/", "api/")
    checked, missing = 0, []
    for page in _pages():
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not target.startswith(("http://", "https://", "#", "mailto:")):
                checked += 1
                if not (page.parent / target.split("#")[0]).exists():
                    missing.append(f"{page.name}: link {target}")
        text = re.sub(r"\[[^\]]*\]\(https?://[^)]*\)", "", text)  # links to other repositories
        for token in re.findall(r"`([^`\n]+)`", text):
            path = token.split("::")[0].strip()
            if any(c in path for c in "*<{ ") or "..." in path:
                continue  # a pattern or a placeholder, not a file
            if path.startswith(top):
                where = [ROOT / path, page.parent / path]
            elif re.fullmatch(r"[\w.-]+\.yaml", path) and path != "config.yaml":
                where = [ROOT / "examples" / "configs" / path]
            else:
                continue
            checked += 1
            if not any(p.exists() for p in where):
                missing.append(f"{page.name}: {path}")
    assert checked >= 100
    assert missing == []


def test_docs_never_cite_design_notes_outside_the_repository() -> None:
    for page in [*_pages(), *sorted((ROOT / "examples").rglob("*.py"))]:
        assert "DESIGN.md" not in page.read_text(), page


def test_every_generated_section_names_the_script_that_writes_it() -> None:
    """A ``<!-- name:start -->`` section of the docs is written by a script of benchmarks/
    (its ``write_section`` call names it; ``-cpu`` / ``_cuda`` suffixes come from the device)."""
    sources = "\n".join(p.read_text() for p in sorted((ROOT / "benchmarks").glob("*.py")))
    names = set()
    for page in _pages():
        names |= set(re.findall(r"<!-- ([\w-]+):start -->", page.read_text()))
    assert len(names) >= 15
    orphans = []
    for name in sorted(names):
        stem = re.sub(r"[-_](cpu|cuda)$", "", name)
        if f'"{name}"' not in sources and not re.search(rf'f"{re.escape(stem)}[-_]\{{', sources):
            orphans.append(name)
    assert orphans == []


def test_parameter_counts_quoted_for_the_paper_presets() -> None:
    """The ``params (ours)`` column of the CIFAR-10 table in results.md is ``count_params``."""
    from dnwgraph import count_params, create_model

    text = (ROOT / "docs" / "results.md").read_text()
    rows = re.findall(r"\| `(tiny_\w+)` \| ([\d,]+) \|", text)
    assert [name for name, _ in rows] == ["tiny_static", "tiny_discrete", "tiny_continuous"]
    for name, count in rows:
        if name == "tiny_continuous":
            pytest.importorskip("torchdiffeq")
        model = create_model(name, selection="random", seed=0)
        assert count_params(model) == int(count.replace(",", "")), name


def test_architecture_page_names_only_modules_that_exist_and_is_linked():
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = re.findall(r"`(dnwgraph/[\w/]+\.py)`", text)
    assert len(paths) >= 15
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert missing == []
    for layer in ("graph", "select", "nn", "models", "runs", "train", "analysis"):
        assert f"<b>{layer}/</b>" in text and (ROOT / "dnwgraph" / layer).is_dir()
    assert "[docs/architecture.md](docs/architecture.md)" in (ROOT / "README.md").read_text()
