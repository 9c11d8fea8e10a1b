"""Every test that needs a GPU carries the ``cuda`` marker of pyproject.toml, so that
``pytest -m cuda`` runs all of them on a GPU machine and ``-m "not cuda"`` none."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_marker_is_declared():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    markers = config["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("cuda:") for m in markers)


def test_every_cuda_skip_carries_the_cuda_marker():
    """A ``skipif(not torch.cuda.is_available())`` has ``pytest.mark.cuda`` beside it (the
    line above or below, in a decorator stack, ``pytestmark`` or ``pytest.param`` marks)."""
    skip = re.compile(r"skipif\(\s*not torch\.cuda\.is_available\(\)")
    found, missing = 0, []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if skip.search(line):
                found += 1
                near = "\n".join(lines[max(0, i - 2) : i + 3])
                if "pytest.mark.cuda" not in near:
                    missing.append(f"{path.relative_to(ROOT)}:{i + 1}")
    assert found >= 4
    assert missing == []


def test_make_test_is_the_fast_suite_and_ci_runs_every_test():
    """``make test`` leaves out the ``slow`` tests, ``make test-all`` and CI run them all."""
    make = (ROOT / "Makefile").read_text()
    assert re.search(r'^test: setup\n\t\$\(PY\) -m pytest -q -m "not slow"$', make, re.M)
    assert re.search(r"^test-all: setup\n\t\$\(PY\) -m pytest -q$", make, re.M)
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test-all")


def test_slow_modules_exist_and_are_marked(tmp_path, monkeypatch):
    """Every module of ``tests/slow_modules.txt`` exists; the conftest hook marks the tests of
    a listed module ``slow`` and no other."""
    import importlib.util
    import types

    # by path: ``import conftest`` finds whichever conftest.py pytest imported first
    spec = importlib.util.spec_from_file_location("tests_conftest", ROOT / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    for module in conftest.slow_modules():
        assert (ROOT / module).is_file(), module
    listed = tmp_path / "slow_modules.txt"
    listed.write_text("# comment\ntests/a/test_x.py  # measured\n")
    monkeypatch.setattr(conftest, "SLOW_LIST", listed)

    class Item:
        def __init__(self, path: str) -> None:
            self.path, self.markers = ROOT / path, []

        def add_marker(self, marker) -> None:
            self.markers.append(marker.name)

    items = [Item("tests/a/test_x.py"), Item("tests/a/test_y.py")]
    conftest.pytest_collection_modifyitems(types.SimpleNamespace(rootpath=ROOT), items)
    assert [item.markers for item in items] == [["slow"], []]
