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
