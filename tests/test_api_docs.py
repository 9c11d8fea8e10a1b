"""The API reference (mkdocs + mkdocstrings) builds with --strict and renders the docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_api_reference_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (site / "api" / "graph" / "index.html").read_text()
    assert "from_data" in page and "CycleError" in page
    assert "save_pretrained" in (site / "api" / "models" / "index.html").read_text()


def test_every_public_name_has_a_reference_entry():
    import importlib

    pages = {sub: sub for sub in ("graph", "select", "nn", "models", "runs", "train", "analysis")}
    pages["nn.kernels"] = "kernels"
    for sub, page in pages.items():
        text = (ROOT / "docs" / "api" / f"{page}.md").read_text()
        for name in importlib.import_module(f"dnwgraph.{sub}").__all__:
            assert f"::: dnwgraph.{sub}.{name}\n" in text, (sub, name)
