"""The Python blocks of docs/analysis.md run and print what the page says they print."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "analysis.md"


def test_analysis_page_blocks_run(tmp_path):
    text = PAGE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the page writes under runs/docs_analysis/
    namespace: dict = {"__name__": "__docs__"}
    try:
        with contextlib.redirect_stdout(out):
            for block in blocks:
                exec(compile(block, str(PAGE), "exec"), namespace)
    finally:
        os.chdir(cwd)
    printed = out.getvalue()
    for value in re.findall(r"print\(.*\)\s+# (\[[^\]]*\]|True|1\.0)", text):
        assert value in printed, f"expected {value} in the output\n{printed}"
    assert "True True" in printed


def test_analysis_page_images_exist_and_stay_small():
    text = PAGE.read_text()
    images = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", text)
    assert len(images) == 7  # plot_run's figures, the |w| histograms included
    sizes = [(ROOT / "docs" / p).stat().st_size for p in images]
    assert all(s > 0 for s in sizes) and sum(sizes) < 2_000_000
